"""The contract between the agent (`ftagent`) and the control plane (`control`).

Two processes on different machines talk over HTTP; this package is what both agree on,
and the only thing they share:

- `vocabulary`: the words both sides use (severity and its order, attack families,
  mitigation modes, rule kinds ...);
- `bounds`: the limits a value must respect wherever it is decoded or configured;
- `agent_api`: the Agent API's messages (`/api/v1/agent/...`);
- `deploy_api`: the Deploy API's request and reply (`/api/deploy`).

It imports msgspec and the standard library only. `ftagent` and `control` both import it
and never each other.
"""
