-- Where and when each worker process started, so a restarted gateway can tell whether a pid
-- the store records as live is still that worker (and kill its group) or was reused: the host
-- (`/etc/machine-id` and the pid namespace), its boot (`boot_id`), and the process start time
-- in clock ticks since boot (`/proc/PID/stat` field 22). NULL for rows written before this
-- migration.
ALTER TABLE workers ADD COLUMN host TEXT;
ALTER TABLE workers ADD COLUMN boot_id TEXT;
ALTER TABLE workers ADD COLUMN start_ticks INTEGER;
