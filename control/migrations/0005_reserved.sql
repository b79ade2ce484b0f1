-- 0005: reserved for issue 10's control-plane migration (being written on another branch
-- this session). This placeholder only keeps the version numbers contiguous on the
-- dashboard branch; it changes nothing. Delete it when the real 0005 is merged.
SELECT 1;
