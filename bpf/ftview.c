/* SPDX-License-Identifier: Apache-2.0 */
/* Maps only, no program: compiled with -DFT_PIN_DIR by `ftagent rules|block|unblock`
 * so bcc opens the running agent's pinned maps with their generated types. */
#include <uapi/linux/bpf.h>
#include "ftmaps.h"
