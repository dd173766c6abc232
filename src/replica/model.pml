/*
 * The replica protocol of turnwatch: leases, session ownership with epochs, fenced writes,
 * takeover, graceful stop and the first-writer-wins end of a turn, as a Promela model.
 *
 * This is the design src/replica/ implements (issue 13; ../shared/spec/replicas.md, "Model"),
 * written before the code; the obligations the code must meet to be described by it are
 * listed in src/replica.rs. The test src/replica/model_check.rs checks it on every
 * `cargo test`. By hand, from the repository root:
 *
 *     cd $(mktemp -d) && M=$OLDPWD/src/replica/model.pml
 *     spin -a $M && cc -O2 -DSAFETY -w -o pan pan.c && ./pan      expect `errors: 0`
 *     spin -a -DNR=3 $M && ...                                     three replicas
 *     spin -a $M && cc -O2 -DNP -w -o pan pan.c && ./pan -l       no cycle: every run ends
 *     spin -a -DBAD_UNFENCED $M && ...                             a seeded bug: `errors: 1`;
 *     spin -t -p -DBAD_UNFENCED $M                                 prints its counterexample
 *     (compile with -DBFS instead of -DSAFETY for the shortest counterexample)
 *
 * ---------------------------------------------------------------------------------------------
 * WHAT IS MODELLED
 *
 * One session, two turns (T0 before T1 in the session's order), NR replicas (2 or 3), one
 * worker per replica for the session. The database is the global variables under "the
 * database"; each d_step that touches them is ONE transaction, atomic and serialized with every
 * other (obligation O1 in src/replica.rs is what makes that true on PostgreSQL). Each replica
 * is one process; reg/held/wk/stopping/lapsed, indexed by replica, are its memory, and wproc
 * is the operating system's view of its worker. Spin interleaves processes arbitrarily, so a
 * replica can be descheduled for any number of steps: that is a pause (SIGSTOP, a GC, a slow
 * network, a store outage seen from one replica).
 *
 * Faults, at any step, at most MAXF (2) in all:
 *   LAPSE  a replica's lease runs out while it still runs (it was paused or slow) and a
 *          sweeper marks it lost; the replica does not know yet.
 *   CRASH  SIGKILL: its memory is gone and its worker dies with it (PR_SET_PDEATHSIG); it
 *          restarts as a new registration, or (replicas other than 0) stays down. The dead
 *          registration's lease runs out later (LAPSED, a separate step: others act between).
 * plus at most MAXSTOP (1) graceful stop (SIGTERM with a live peer, then a restart: a rolling
 * restart), at most MAXSTRAND (1) turn ended by the stranded sweeper (a clock ran out), and
 * worker crashes at any time. Faults stop at a nondeterministic moment (process `calm`), so
 * every state reached with fewer faults is also checked to finish cleanly. Replica 0 always
 * comes back, so one replica is live at the end.
 *
 * Abstractions. Time is not modelled: "the lease ran out and a sweeper marked it lost" may
 * happen at any moment to any live registration. That covers every real schedule (a lease
 * runs out only when its owner did not renew for `lease`, and a paused or slow owner cannot be
 * told from one that stopped renewing). A renewal that succeeds changes nothing here, so it is
 * not a step; the refused one is (LOST). A worker's internals are invisible to the store until
 * its replica writes them, so "the worker replies" and "the replica records it" are one step
 * (REPLY), and so are a worker's death and the replica noticing it (WORKER_CRASH). Progress
 * events (Change::Event) are fenced writes like DISPATCH and would add nothing.
 *
 * ---------------------------------------------------------------------------------------------
 * EACH STEP IS THIS CODE (src/replica/ does not exist yet; the names are the ones it will use)
 *
 * Tables: replicas(id, name, host, pid, version, started_at, heartbeat_at, lease_until,
 * state live|stopping|stopped|lost); sessions gain owner (a replicas.id, NULL = none) and
 * owner_epoch (bigint, +1 at every claim); turns gain seq (the session's order = commit
 * order); workers gain replica_id. A registration is one replicas row: a replica that was lost
 * or restarts inserts a NEW row (new id); a row that is not live is never live again.
 *
 *  model            code
 *  ---------------  ------------------------------------------------------------------------
 *  lease_ok[g]      replicas.state = 'live' for row g
 *  init             replica::registry::register: INSERT INTO replicas (...) VALUES ($id, ...,
 *                   lease_until = clock_timestamp() + $lease, state = 'live')
 *  (not a step)     replica::registry::renew, every lease/3: UPDATE replicas SET heartbeat_at =
 *                   clock_timestamp(), lease_until = clock_timestamp() + $lease
 *                   WHERE id = $me AND state = 'live'
 *  LAPSE, LAPSED    replica::sweep::mark_lost (every live replica, every <= 1 s): UPDATE
 *                   replicas SET state = 'lost' WHERE state = 'live' AND lease_until <
 *                   clock_timestamp() RETURNING id  (the database clock alone judges leases)
 *  LOST             renew updated 0 rows => replica::lost: SIGKILL every worker's group, drop
 *                   every actor without writing, then register again (a new row)
 *  CLAIM            replica::ownership::claim($s), one transaction:
 *                     SELECT owner FROM sessions WHERE id = $s FOR UPDATE;
 *                     UPDATE sessions SET owner = $me, owner_epoch = owner_epoch + 1
 *                      WHERE id = $s AND (owner IS NULL OR owner IN (SELECT id FROM replicas
 *                      WHERE state <> 'live')) AND EXISTS (SELECT 1 FROM replicas WHERE
 *                      id = $me AND state = 'live') RETURNING owner_epoch;
 *                     Change::EndTurn{replica_lost} (first writer wins) for each turn of $s
 *                      with ended_at IS NULL AND state <> 'queued';
 *                     UPDATE workers SET state = 'exited', exit_reason = 'replica_lost',
 *                      intentional = false WHERE session_id = $s AND exited_at IS NULL
 *                   called by: the replica that inserted a turn for a session with no live
 *                   owner; the queued-turn scan (<= 1 s: a lost NOTIFY, a receiver that
 *                   crashed after its insert); the sweeper, for EVERY session of a lost
 *                   replica, queued turns or not
 *  FENCE(r)         replica::fence::Fence { owner, epoch }, carried by every Change a
 *                   session's actor sends; the backend opens each fenced change with
 *                   SELECT 1 FROM sessions WHERE id = $s AND owner = $me AND owner_epoch = $e
 *                   FOR SHARE; no row => Applied::Fenced (that change does nothing; the rest
 *                   of the batch goes on)
 *  SPAWN            the actor spawns a worker: Change::WorkerSpawned + fence
 *  DISPATCH         Change::Dispatch + fence; SQL ... WHERE id = $t AND state = 'queued' AND
 *                   NOT EXISTS (SELECT 1 FROM turns p WHERE p.session_id = $s AND p.seq <
 *                   $seq AND p.ended_at IS NULL)
 *  REPLY            the worker's final line: supervisor::end_turn (Change::EndTurn, `UPDATE
 *                   turns SET ... WHERE id = $t AND ended_at IS NULL`, as store/sqlite/
 *                   writes.rs does today) + fence; a no-op on an ended turn (late)
 *  WORKER_CRASH     the actor's on_exit: Change::EndTurn{worker_crashed} + WorkerExited, fenced
 *  IDLE_EXIT        an idle worker is stopped (idle clock, supervisor/evict.rs):
 *                   Change::WorkerExited + fence
 *  STRANDED         gateway/sweeper.rs: a turn whose clocks ran out, ended by any replica;
 *                   unfenced, conditional (first writer wins)
 *  FENCED           a change came back Applied::Fenced: the session is lost to this replica:
 *                   SIGKILL its worker's group, drop its actor (its queued turns stay queued
 *                   in the store); the worker's late output may still be recorded with
 *                   Change::Reject{late}, unfenced (it changes no turn, no session event)
 *  STOP             SIGTERM with a live peer: replica::registry::stopping (state = 'stopping':
 *                   claim nothing, dispatch nothing new)
 *  DRAIN            stop_drain ran out: EndTurn{gateway_shutdown} + WorkerExited, fenced
 *  RELEASE          replica::ownership::release: WorkerExited{intentional} + UPDATE sessions
 *                   SET owner = NULL WHERE id = $s AND owner = $me AND owner_epoch = $e; NOTIFY
 *  LEAVE            UPDATE replicas SET state = 'stopped' WHERE id = $me; the process exits
 *  CRASH            SIGKILL: PR_SET_PDEATHSIG(SIGKILL) kills the workers (supervisor/
 *                   spawner.rs, exists); start-up recovery (supervisor/recovery.rs, exists)
 *                   kills a survivor on this host
 *  client           POST .../messages on any replica: Change::InsertTurn (not fenced: any
 *                   replica accepts a message), then NOTIFY
 *
 * ---------------------------------------------------------------------------------------------
 * PROPERTIES (spin reports `errors: 0` for NR=2 and NR=3, exhaustively)
 *
 *  (a) No turn ends twice: in every state ends[t] <= 1 (one `complete` or one failure, never
 *      both, never two).
 *  (b) Every accepted turn ends exactly once: every run is finite (spin -DNP ... ./pan -l
 *      finds no cycle), and in every final state (no process can move) every posted turn has
 *      ended, once, and replica 0 is live.
 *  (c) Only one replica's worker is effective for the session, and only its work counts:
 *      (c1) every write that records a worker's work or hands it work (SPAWN, DISPATCH,
 *           REPLY, WORKER_CRASH, DRAIN, RELEASE) and changes the store is made by the
 *           registration that holds the session's current owner and epoch;
 *      (c2) a turn is handed to a worker at most once;
 *      (c3) a turn is handed to a worker only after every earlier turn of the session ended;
 *      (c4) in every state at most one worker process is effective: alive, its replica
 *           holding the session's current (owner, epoch).
 *  (d) Takeover, graceful stop and the stranded sweeper fail only turns that reached a
 *      worker; a queued turn goes to the next owner and is never failed by them.
 *  (e) In every final state every live worker process is effective, and every worker row the
 *      store records as live is a live worker: no stale worker, no stale row.
 *
 * WHY (c), AND NOT "no two worker processes exist at once". The literal property is false for
 * a lease protocol without timing assumptions. A SIGSTOPped replica cannot kill its worker
 * (PDEATHSIG fires on death, not on stop), and the worker, in its own process group, runs on;
 * once the lease is gone a peer must take the session over or its turns would hang, against
 * (b). So for a while two worker processes exist: the paused replica's and the new owner's.
 * What the protocol guarantees is (c): the paused replica's worker is fenced, nothing it does
 * reaches the store or a client; and (e): it is killed as soon as its replica runs again (its
 * next write is refused, or its renewal is). -DLITERAL checks the literal property; spin finds
 * that schedule (B owns and spawns, B pauses past its lease, A takes over and spawns).
 * The literal property needs one more mechanism, modelled by -DWATCHDOG: a watchdog OUTSIDE
 * the replica process that SIGKILLs the worker's group, and refuses new ones, once the
 * replica's local lease deadline has passed (deadline = when the last successful renewal was
 * SENT + lease - margin, margin > clock-rate drift over one lease), so that the kill precedes
 * the database's expiry. It rests on the watchdog never being paused past that margin, which
 * a frozen host or VM breaks; so the design does not rely on it and the promise is (c) + (e).
 * With -DLITERAL -DWATCHDOG spin shows the literal property holds under that assumption.
 *
 * SEEDED BUGS (each makes spin report an error; the test checks that it does):
 *   -DBAD_UNFENCED               worker writes carry no fence => (c1)
 *   -DBAD_END_UNCONDITIONAL      EndTurn without `ended_at IS NULL` => (a)
 *   -DBAD_SWEEP_ONLY_QUEUED      takeover only of sessions with queued turns => (b): a lost
 *                                replica's dispatched last turn is never failed
 *   -DBAD_TAKEOVER_FAILS_QUEUED  a claim fails queued turns too => (d)
 *   -DLITERAL                    the literal single-process property => fails (see above)
 */

#ifndef NR
#define NR 2          /* replicas */
#endif
#ifndef MAXF
#define MAXF 2        /* lapses + crashes, in total */
#endif
#ifndef MAXSTOP
#define MAXSTOP 1     /* graceful stops (each followed by a restart) */
#endif
#ifndef MAXSTRAND
#define MAXSTRAND 1   /* turns ended by the stranded sweeper */
#endif
#if NR > 3
#error "the macros below spell out at most three replicas"
#endif
#define NT 2          /* turns of the session, in order */
#define NREG (NR + MAXF + MAXSTOP + 1)   /* registration ids 1..NREG-1; 0 = none */

/* turns.state */
#define T_NONE    0   /* not posted yet */
#define T_QUEUED  1
#define T_DISP    2   /* reached a worker */
#define T_ENDED   3
/* turns.code */
#define C_COMPLETE 1
#define C_CRASHED  2   /* worker_crashed */
#define C_LOST     3   /* replica_lost */
#define C_SHUTDOWN 4   /* gateway_shutdown */
#define C_STRANDED 5   /* a clock ran out (stall, deadline) */
/* a replica's memory of its worker: none, idle, or busy with turn t (W_BUSY + t) */
#define W_NONE 0
#define W_IDLE 1
#define W_BUSY 2
/* workers row of a registration's worker */
#define R_NONE   0
#define R_LIVE   1
#define R_EXITED 2

/* ---- the database ---- */
bool lease_ok[NREG];   /* replicas.state = 'live' */
byte owner;            /* sessions.owner (registration id), 0 = NULL */
byte epoch;            /* sessions.owner_epoch */
byte tstate[NT];       /* turns.state */
byte tcode[NT];        /* turns.code */
byte wrow[NREG];       /* workers row of registration g's worker for the session */

/* ---- each replica's memory ---- */
byte reg[NR];          /* its registration (replicas.id), 0 = down */
byte held[NR];         /* the epoch it believes it owns the session with, 0 = not owner */
byte wk[NR];           /* its actor's view of its worker */
bool wproc[NR];        /* its worker process is alive (the OS's view, not the replica's) */
bool stopping[NR];     /* SIGTERM received */
byte lapsed[NR];       /* a crashed registration whose lease has not run out yet */

/* ---- the environment and the observers (ghost state, not code) ---- */
bool chaos = true;     /* faults may still happen */
byte faults, stops, strands;
byte nextreg = NR + 1;
byte ends[NT];         /* EndTurn writes that changed the turn */
byte disp[NT];         /* Dispatch writes that changed the turn */

#define FENCED(r)  (held[r] != 0 && owner == reg[r] && epoch == held[r])
#ifdef BAD_UNFENCED
#define FENCE(r)   (held[r] != 0)
#else
#define FENCE(r)   FENCED(r)
#endif
/* (c1): called where a worker write changes the store */
#define ACCEPTED(r) assert(FENCED(r))

/* the next turn in session order, if it is queued and every earlier one ended; NT if none */
#define NEXTQ  (tstate[0] == T_QUEUED -> 0 : \
               ((tstate[0] == T_ENDED && tstate[1] == T_QUEUED) -> 1 : NT))
#define ANY_QUEUED (tstate[0] == T_QUEUED || tstate[1] == T_QUEUED)
#define ANY_DISP   (tstate[0] == T_DISP || tstate[1] == T_DISP)

/* Change::EndTurn: UPDATE turns ... WHERE id = $t AND ended_at IS NULL (first writer wins).
 * `fail` is 1 for an end that is not a worker's own (takeover, drain, sweeper): (d). */
#ifdef BAD_END_UNCONDITIONAL
#define END(t, c, r, fail) \
  assert(!fail || tstate[t] == T_DISP); \
  if :: r < NR -> ACCEPTED(r) :: else -> skip fi; \
  tstate[t] = T_ENDED; tcode[t] = c; ends[t]++
#else
#define END(t, c, r, fail) \
  if \
  :: tstate[t] != T_ENDED -> \
       assert(!fail || tstate[t] == T_DISP); \
       if :: r < NR -> ACCEPTED(r) :: else -> skip fi; \
       tstate[t] = T_ENDED; tcode[t] = c; ends[t]++ \
  :: else -> skip \
  fi
#endif

#define UP(i)       (reg[i] != 0 && lease_ok[reg[i]] && !stopping[i])
#define PEER_UP(r)  ((r != 0 && UP(0)) || (r != 1 && UP(1)) || (NR > 2 && r != 2 && UP(2)))
/* (c4) */
#define EFF(i)      (wproc[i] && FENCED(i))
#define NEFF        (EFF(0) + EFF(1) + (NR > 2 -> EFF(NR - 1) : 0))
#define NPROC       (wproc[0] + wproc[1] + (NR > 2 -> wproc[NR - 1] : 0))

proctype replica(byte r)
{
  byte t, g;
end:
  do
  /* CLAIM: replica::ownership::claim, with the takeover of a lost owner */
  :: d_step {
       reg[r] != 0 && lease_ok[reg[r]] && !stopping[r] && held[r] == 0 &&
#ifdef BAD_SWEEP_ONLY_QUEUED
       (owner == 0 || !lease_ok[owner]) && ANY_QUEUED ->
#else
       ((owner == 0 && ANY_QUEUED) || (owner != 0 && !lease_ok[owner])) ->
#endif
       g = owner; owner = reg[r]; epoch++; held[r] = epoch;
       t = 0;
       do
       :: t < NT ->
          if
          :: tstate[t] == T_DISP -> END(t, C_LOST, NR, 1)
#ifdef BAD_TAKEOVER_FAILS_QUEUED
          :: tstate[t] == T_QUEUED -> END(t, C_LOST, NR, 1)
#endif
          :: else -> skip
          fi;
          t++
       :: else -> break
       od;
       if :: g != 0 && wrow[g] == R_LIVE -> wrow[g] = R_EXITED :: else -> skip fi;
       t = 0; g = 0
     }
  /* SPAWN: the owner starts a worker for the next queued turn */
  :: d_step {
       FENCE(r) && !stopping[r] && wk[r] == W_NONE && NEXTQ < NT &&
#ifdef WATCHDOG
       lease_ok[reg[r]] &&   /* the watchdog kills whatever is spawned past the deadline */
#endif
       true ->
       ACCEPTED(r); wrow[reg[r]] = R_LIVE; wk[r] = W_IDLE; wproc[r] = true
     }
  /* DISPATCH: the next turn in order to the idle worker */
  :: d_step {
       FENCE(r) && !stopping[r] && wk[r] == W_IDLE && wproc[r] && NEXTQ < NT ->
       ACCEPTED(r); t = NEXTQ; tstate[t] = T_DISP; disp[t]++; wk[r] = W_BUSY + t; t = 0
     }
  /* REPLY: the worker's final line, recorded (a no-op if the turn already ended: late) */
  :: d_step {
       wk[r] >= W_BUSY && wproc[r] && FENCE(r) ->
       t = wk[r] - W_BUSY; END(t, C_COMPLETE, r, 0); wk[r] = W_IDLE; t = 0
     }
  /* WORKER_CRASH: the worker dies (or was killed) mid-turn; the actor records it */
  :: d_step {
       wk[r] >= W_BUSY && FENCE(r) ->
       t = wk[r] - W_BUSY; END(t, C_CRASHED, r, 0);
       if :: wrow[reg[r]] == R_LIVE -> ACCEPTED(r); wrow[reg[r]] = R_EXITED :: else -> skip fi;
       wk[r] = W_NONE; wproc[r] = false; t = 0
     }
  /* IDLE_EXIT: the idle worker exits with no turn for it (the idle clock), or its process is
   * gone (the WATCHDOG); recorded. (A worker that dies at every start is the single-node
   * startup clock's business: it fails the turn; not modelled.) */
  :: d_step {
       wk[r] == W_IDLE && FENCE(r) && (NEXTQ == NT || !wproc[r]) ->
       if :: wrow[reg[r]] == R_LIVE -> ACCEPTED(r); wrow[reg[r]] = R_EXITED :: else -> skip fi;
       wk[r] = W_NONE; wproc[r] = false
     }
#ifndef BAD_UNFENCED
  /* FENCED: a write came back Applied::Fenced: this replica lost the session */
  :: d_step {
       held[r] != 0 && !FENCED(r) ->
       held[r] = 0; wk[r] = W_NONE; wproc[r] = false
     }
#endif
  /* LOST: renew refused (state is no longer 'live'): kill every worker, register anew */
  :: d_step {
       reg[r] != 0 && !lease_ok[reg[r]] ->
       held[r] = 0; wk[r] = W_NONE; wproc[r] = false; stopping[r] = false;
       assert(nextreg < NREG); reg[r] = nextreg; lease_ok[nextreg] = true; nextreg++
     }
  /* STRANDED: any replica's sweeper ends a turn whose clock ran out (unfenced, conditional) */
  :: d_step {
       chaos && strands < MAXSTRAND && reg[r] != 0 && ANY_DISP ->
       strands++; t = (tstate[0] == T_DISP -> 0 : 1); END(t, C_STRANDED, NR, 1); t = 0
     }
  /* LAPSE: paused or slow past its lease; a sweeper marks it lost. The replica runs on. */
  :: d_step {
       chaos && faults < MAXF && reg[r] != 0 && lease_ok[reg[r]] ->
       faults++; lease_ok[reg[r]] = false;
#ifdef WATCHDOG
       wproc[r] = false   /* the watchdog killed the worker before the lease ran out */
#else
       skip
#endif
     }
  /* CRASH: SIGKILL; the worker dies with it (PDEATHSIG); memory gone; restart */
  :: d_step {
       chaos && faults < MAXF && reg[r] != 0 && lapsed[r] == 0 ->
       faults++; lapsed[r] = reg[r]; held[r] = 0; wk[r] = W_NONE; wproc[r] = false;
       stopping[r] = false;
       assert(nextreg < NREG); reg[r] = nextreg; lease_ok[nextreg] = true; nextreg++
     }
  /* CRASH and stay down (not replica 0: one replica is always there in the end) */
  :: d_step {
       chaos && r != 0 && faults < MAXF && reg[r] != 0 && lapsed[r] == 0 ->
       faults++; lapsed[r] = reg[r]; held[r] = 0; wk[r] = W_NONE; wproc[r] = false;
       stopping[r] = false; reg[r] = 0
     }
  /* LAPSED: the dead registration's lease runs out; a sweeper marks it lost */
  :: d_step { lapsed[r] != 0 -> lease_ok[lapsed[r]] = false; lapsed[r] = 0 }
  /* STOP: SIGTERM with a live peer: claim nothing new, drain */
  :: d_step {
       chaos && stops < MAXSTOP && UP(r) && PEER_UP(r) -> stops++; stopping[r] = true
     }
  /* DRAIN: stop_drain ran out: the turn in flight fails, the worker is stopped */
  :: d_step {
       stopping[r] && wk[r] >= W_BUSY && FENCE(r) ->
       t = wk[r] - W_BUSY; END(t, C_SHUTDOWN, r, 1);
       if :: wrow[reg[r]] == R_LIVE -> ACCEPTED(r); wrow[reg[r]] = R_EXITED :: else -> skip fi;
       wk[r] = W_NONE; wproc[r] = false; t = 0
     }
  /* RELEASE: idle now: worker exited (intentional), owner = NULL (fenced) */
  :: d_step {
       stopping[r] && wk[r] < W_BUSY && FENCE(r) ->
       ACCEPTED(r);
       if :: wrow[reg[r]] == R_LIVE -> wrow[reg[r]] = R_EXITED :: else -> skip fi;
       wk[r] = W_NONE; wproc[r] = false; owner = 0; held[r] = 0
     }
  /* LEAVE: state = 'stopped', the process exits; the rolling restart brings it back */
  :: d_step {
       stopping[r] && held[r] == 0 ->
       lease_ok[reg[r]] = false; stopping[r] = false;
       assert(nextreg < NREG); reg[r] = nextreg; lease_ok[nextreg] = true; nextreg++
     }
  od
}

/* A client posts two messages, in order, through any replicas (InsertTurn + NOTIFY). */
active proctype client()
{
  tstate[0] = T_QUEUED;
  tstate[1] = T_QUEUED
}

/* Faults stop at some moment; from then on the system must finish cleanly. */
active proctype calm()
{
  chaos = false
}

/* (a), (c2), (c3), (c4), [LITERAL]: hold in every state. */
active proctype invariants()
{
end:
  atomic {
    !(ends[0] <= 1 && ends[1] <= 1 && disp[0] <= 1 && disp[1] <= 1 &&
      (tstate[1] != T_DISP || tstate[0] == T_ENDED) && NEFF <= 1
#ifdef LITERAL
      && NPROC <= 1
#endif
     ) ->
    assert(ends[0] <= 1 && ends[1] <= 1);              /* (a) */
    assert(disp[0] <= 1 && disp[1] <= 1);              /* (c2) */
    assert(tstate[1] != T_DISP || tstate[0] == T_ENDED); /* (c3) */
    assert(NEFF <= 1)                                   /* (c4) */
#ifdef LITERAL
    ; assert(NPROC <= 1)                                /* the literal property */
#endif
  }
}

/* (b), (e): hold in every final state (no process can move). */
active proctype quiescence()
{
  byte i;
end:
  timeout ->
  assert(tstate[0] == T_ENDED && ends[0] == 1 && tstate[1] == T_ENDED && ends[1] == 1); /* (b) */
  assert(UP(0));
#ifndef BAD_SWEEP_ONLY_QUEUED   /* that variant also leaves a stale row; report (b) alone */
  i = 0;
  do
  :: i < NR ->
     assert(!wproc[i] || EFF(i));                               /* (e) no stale worker */
     i++
  :: else -> break
  od;
  i = 1;
  do
  :: i < NREG ->                                                /* (e) no stale row */
     assert(wrow[i] != R_LIVE ||
            (reg[0] == i && wproc[0]) || (reg[1] == i && wproc[1]) ||
            (NR > 2 && reg[NR - 1] == i && wproc[NR - 1]));
     i++
  :: else -> break
  od
#endif
}

init
{
  byte r;
  atomic {
    r = 0;
    do
    :: r < NR -> reg[r] = r + 1; lease_ok[r + 1] = true; run replica(r); r++
    :: else -> break
    od;
    r = 0
  }
}
