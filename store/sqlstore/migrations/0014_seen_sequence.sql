-- The sequence number of the message an agent was last seen with, next to
-- last_seen: heartbeats (TouchAgents) keep it current without rewriting the
-- agent row, so a reconnect continuing the sequence is not asked for its
-- full state. NULL: as in the agent document.
ALTER TABLE agent_seen ADD COLUMN sequence_num bigint;
