-- A vote rewrites its voter's rows and bumps its meeting's version many times over a
-- poll's life. Leaving room on each page lets PostgreSQL keep those new row versions on
-- the same page (a HOT update: no index entries to add, nothing for VACUUM to chase in
-- the indexes). Applies to pages written from now on.
ALTER TABLE votes SET (fillfactor = 70);
ALTER TABLE meetings SET (fillfactor = 80);
