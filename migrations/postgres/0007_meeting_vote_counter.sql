-- A ballot numbers its new vote rows from a counter on its meeting's row, which it
-- rewrites anyway (the version), instead of reading every vote of the meeting for the
-- largest position; the meeting's row lock orders concurrent ballots.
ALTER TABLE meetings ADD COLUMN next_vote bigint NOT NULL DEFAULT 0;
UPDATE meetings AS m SET next_vote = v.next
FROM (SELECT tenant_id, meeting_id, max(position) + 1 AS next FROM votes GROUP BY 1, 2) AS v
WHERE m.tenant_id = v.tenant_id AND m.id = v.meeting_id;
