package embedded_test

// Joined stages (pipeline.Stage.Joined) on the embedded queue: the stage's writes commit in the
// transaction that settles its messages, or not at all.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

func newTestParams(t testing.TB, db *embedded.DB) params.Store {
	t.Helper()
	ps, err := embedded.NewParamStore(db, "test")
	if err != nil {
		t.Fatal(err)
	}
	return db.SerializeParams(ps) // (takes the file's write lock: must not wait for the exchange)
}

// paramOf is name's current value and version, read on the pool (committed state only); "" and
// 0 when there is none.
func paramOf(t testing.TB, db *embedded.DB, name string) (string, int64) {
	t.Helper()
	var v string
	var ver int64
	err := db.SQL.QueryRow(`SELECT value, version FROM params WHERE account = 'test' AND name = ?`, name).Scan(&v, &ver)
	if err != nil {
		return "", 0
	}
	return v, ver
}

func skipped(in message.Envelope) []message.Envelope {
	return []message.Envelope{in.MustDerive(message.TypeDeploymentSkipped, "skipped:"+in.ID,
		message.DeploymentSkipped{ChangeSetID: in.ID, Component: "prod/vpc/core", Reason: "no-consumed-key-changed"})}
}

// A joined stage's write is invisible to others until the exchange commits it, is read back by
// the stage itself meanwhile, and commits with the outputs, the mark and the acknowledgement.
func TestJoinedStageCommitsItsWritesWithTheAck(t *testing.T) {
	db := queueTestDB(t, "")
	q, seen, ps := newTestQueue(t, db), newTestSeen(t, db), newTestParams(t, db)
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Joined: true, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		name := "/joined/" + in.ID
		if _, err := ps.Put(ctx, params.PutInput{Name: name, Value: "v"}); err != nil {
			return nil, err
		}
		if p, err := ps.Get(ctx, name); err != nil || p.Value != "v" {
			t.Errorf("the stage does not read its own write: %+v, %v", p, err)
		}
		if v, _ := paramOf(t, db, name); v != "" {
			t.Error("the stage's write is visible before the exchange commits")
		}
		return skipped(in), nil
	}}
	in := request(t, "cr-joined")
	sendEnvelope(t, q, st.Name, in)
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute}
	run(t, r, o, func(ob observation) bool {
		if ob.action != pipeline.Ack {
			t.Errorf("action %v (%v)", ob.action, ob.err)
		}
		return true
	})
	if v, ver := paramOf(t, db, "/joined/"+in.ID); v != "v" || ver != 1 {
		t.Errorf("after the exchange: %q version %d, want v version 1", v, ver)
	}
	if done, _ := seen.Done(context.Background(), "resolve|request:cr-joined"); !done {
		t.Error("key not marked")
	}
	if got := drainQueue(t, q, pipeline.StageGraphWrite); len(got) != 1 {
		t.Errorf("graph-write got %d messages, want 1", len(got))
	}
	if n, _ := q.Depth(context.Background(), st.Name); n != 0 {
		t.Errorf("depth %d", n)
	}
}

// A message that is to be retried leaves nothing behind: its writes are undone (the retry's
// write is version 1, not 2), while the other messages of its batch keep theirs.
func TestJoinedRetryUndoesOnlyItsOwnWrites(t *testing.T) {
	db := queueTestDB(t, "")
	q, seen, ps := newTestQueue(t, db), newTestSeen(t, db), newTestParams(t, db)
	var failed atomic.Bool
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Joined: true, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		if _, err := ps.Put(ctx, params.PutInput{Name: "/joined/" + in.ID, Value: "v"}); err != nil {
			return nil, err
		}
		if in.ID == "b" && failed.CompareAndSwap(false, true) {
			return nil, pipeline.Transient(errors.New("try b again"))
		}
		return skipped(in), nil
	}}
	for _, id := range []string{"a", "b", "c"} {
		e := request(t, id)
		e.ID = id
		sendEnvelope(t, q, st.Name, e)
	}
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute, RetryBase: 10 * time.Millisecond}
	acks, retries := 0, 0
	run(t, r, o, func(ob observation) bool {
		switch ob.action {
		case pipeline.Ack:
			acks++
		case pipeline.Retry:
			retries++
			if v, _ := paramOf(t, db, "/joined/b"); v != "" {
				t.Error("b's write outlived its failed attempt")
			}
		default:
			t.Errorf("action %v (%v)", ob.action, ob.err)
		}
		return acks == 3
	})
	if retries != 1 {
		t.Errorf("%d retries, want 1", retries)
	}
	for _, id := range []string{"a", "b", "c"} {
		if v, ver := paramOf(t, db, "/joined/"+id); v != "v" || ver != 1 {
			t.Errorf("%s: %q version %d, want v version 1", id, v, ver)
		}
	}
}

// ExchangeJoined commits nothing when the handler fails: not its writes, not its settlements.
func TestExchangeJoinedFailureCommitsNothing(t *testing.T) {
	ctx := context.Background()
	db := queueTestDB(t, "")
	q, ps := newTestQueue(t, db), newTestParams(t, db)
	sendBodies(t, q, "work", "job")
	ds := mustReceive(t, q, "work")
	_, err := q.ExchangeJoined(ctx, func(ctx context.Context, step func(func() bool) error) ([]pipeline.Settlement, error) {
		if err := step(func() bool {
			_, err := ps.Put(ctx, params.PutInput{Name: "/joined/x", Value: "v"})
			return err == nil
		}); err != nil {
			return nil, err
		}
		return nil, errors.New("handler gives up")
	}, nil)
	if err == nil {
		t.Fatal("ExchangeJoined succeeded although its handler failed")
	}
	_, err = q.ExchangeJoined(ctx, func(ctx context.Context, step func(func() bool) error) ([]pipeline.Settlement, error) {
		if _, err := ps.Put(ctx, params.PutInput{Name: "/joined/y", Value: "v"}); err != nil {
			return nil, err
		}
		return []pipeline.Settlement{{Queue: "work", Receipt: ds[0].ReceiptHandle, Action: pipeline.Ack,
			Sends: []pipeline.Outgoing{{Queue: "", Message: queue.Message{Body: []byte("out")}}}}}, nil
	}, nil)
	if err == nil {
		t.Fatal("ExchangeJoined succeeded with a settlement that sends to no queue")
	}
	for _, name := range []string{"/joined/x", "/joined/y"} {
		if v, _ := paramOf(t, db, name); v != "" {
			t.Errorf("%s was committed by a failed exchange", name)
		}
	}
	if n, _ := q.Depth(ctx, "work"); n != 1 {
		t.Errorf("work holds %d messages, want the one not acknowledged", n)
	}
}

// joinedCrashEnv makes TestJoinedCrashHelper the child process of TestJoinedCrashLeavesNothing.
const joinedCrashEnv = "KARMA_TEST_JOINED_CRASH_DB"

// TestJoinedCrashHelper is not a test: it is the child process that dies in the middle of a
// joined stage's handler, after its write.
func TestJoinedCrashHelper(t *testing.T) {
	path := os.Getenv(joinedCrashEnv)
	if path == "" {
		t.Skip("helper process (runs when " + joinedCrashEnv + " is set)")
	}
	db := queueTestDB(t, path)
	q, seen, ps := newTestQueue(t, db), newTestSeen(t, db), newTestParams(t, db)
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Joined: true, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		if _, err := ps.Put(ctx, params.PutInput{Name: "/joined/crash", Value: "v"}); err != nil {
			return nil, err
		}
		os.Exit(3) // killed mid-handler
		return nil, nil
	}}
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Visibility: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r.Run(ctx)
	os.Exit(4) // the handler never ran
}

// A process killed in the middle of a joined stage's handler leaves nothing of it: not its
// write, not an acknowledgement; the message is received again (the dead holder's claim and
// delivery are released at once) and handled.
func TestJoinedCrashLeavesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "karma.db")
	db := queueTestDB(t, path)
	q, seen, ps := newTestQueue(t, db), newTestSeen(t, db), newTestParams(t, db)
	sendEnvelope(t, q, pipeline.StageResolve, request(t, "cr-crash"))

	cmd := exec.Command(os.Args[0], "-test.run=^TestJoinedCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), joinedCrashEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("child: %v, want exit 3 (killed mid-handler)\n%s", err, out)
	}
	if v, _ := paramOf(t, db, "/joined/crash"); v != "" {
		t.Fatal("the dead process's write was committed")
	}
	if _, err := q.ReleaseAbandoned(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := seen.ReleaseAbandoned(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Joined: true, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		if _, err := ps.Put(ctx, params.PutInput{Name: "/joined/crash", Value: "again"}); err != nil {
			return nil, err
		}
		return skipped(in), nil
	}}
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute}
	run(t, r, o, func(ob observation) bool {
		if ob.action != pipeline.Ack {
			t.Errorf("action %v (%v)", ob.action, ob.err)
		}
		return true
	})
	if v, ver := paramOf(t, db, "/joined/crash"); v != "again" || ver != 1 {
		t.Errorf("after the redelivery: %q version %d, want again version 1", v, ver)
	}
}

// A write a joined stage makes without its context would wait for the stage's own transaction:
// it fails after MaxLockWait (and the message is retried) instead of hanging the pipeline.
func TestJoinedWriteWithoutTheContextFailsInsteadOfHanging(t *testing.T) {
	old := embedded.MaxLockWait
	embedded.MaxLockWait = 200 * time.Millisecond
	t.Cleanup(func() { embedded.MaxLockWait = old })
	db := queueTestDB(t, "")
	q, seen, ps := newTestQueue(t, db), newTestSeen(t, db), newTestParams(t, db)
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Joined: true, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		_, err := ps.Put(context.Background(), params.PutInput{Name: "/joined/outside", Value: "v"})
		return nil, err
	}}
	sendEnvelope(t, q, st.Name, request(t, "cr-outside"))
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute}
	run(t, r, o, func(ob observation) bool {
		if ob.action != pipeline.Retry || ob.err == nil || !strings.Contains(ob.err.Error(), "write lock") {
			t.Errorf("action %v (%v), want a retry naming the write lock", ob.action, ob.err)
		}
		return true
	})
}

// A joined stage takes no claims: two copies of one message in a batch run the handler once (the
// second is put back, then found done), a key marked earlier is a duplicate, and no claim row is
// ever written.
func TestJoinedStageRunsEachKeyOnceWithoutClaims(t *testing.T) {
	db := queueTestDB(t, "")
	q, seen := newTestQueue(t, db), newTestSeen(t, db)
	var calls atomic.Int32
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Joined: true, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		calls.Add(1)
		return skipped(in), nil
	}}
	if err := seen.Mark(context.Background(), "resolve|request:cr-old"); err != nil {
		t.Fatal(err)
	}
	in := request(t, "cr-twice")
	sendEnvelope(t, q, st.Name, in)
	sendEnvelope(t, q, st.Name, in)
	sendEnvelope(t, q, st.Name, request(t, "cr-old"))
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute}
	acks, dups := 0, 0
	run(t, r, o, func(ob observation) bool {
		switch ob.action {
		case pipeline.Ack:
			acks++
		case pipeline.Duplicate:
			dups++
		case pipeline.Retry:
			var ip *pipeline.InProgress
			if !errors.As(ob.err, &ip) {
				t.Errorf("retry with %v", ob.err)
			}
		default:
			t.Errorf("action %v (%v)", ob.action, ob.err)
		}
		return acks+dups == 3
	})
	if acks != 1 || dups != 2 || calls.Load() != 1 {
		t.Errorf("acks %d, duplicates %d, handler calls %d; want 1, 2, 1", acks, dups, calls.Load())
	}
	var claims int
	if err := db.SQL.QueryRow(`SELECT count(*) FROM claims`).Scan(&claims); err != nil || claims != 0 {
		t.Errorf("%d claim rows (%v), want none", claims, err)
	}
	if done, _ := seen.Done(context.Background(), "resolve|request:cr-twice"); !done {
		t.Error("key not marked")
	}
}

// A message whose key is done already is a duplicate, whatever its Prepare says: a Prepare that
// fails (the Git remote unreachable, a commit gone) does not turn a copy of a message that was
// handled into retries and then a dead letter.
func TestJoinedDuplicateIsNotPrepared(t *testing.T) {
	db := queueTestDB(t, "")
	q, seen := newTestQueue(t, db), newTestSeen(t, db)
	var calls atomic.Int32
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Joined: true,
		Prepare: func(ctx context.Context, in message.Envelope) (any, error) {
			return nil, pipeline.Permanent(errors.New("resolve: fetching commit: the remote is gone"))
		},
		Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			calls.Add(1)
			return skipped(in), nil
		}}
	if err := seen.Mark(context.Background(), "resolve|request:cr-handled"); err != nil {
		t.Fatal(err)
	}
	sendEnvelope(t, q, st.Name, request(t, "cr-handled"))
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute}
	run(t, r, o, func(ob observation) bool {
		if ob.action != pipeline.Duplicate {
			t.Errorf("action %v (%v), want a duplicate", ob.action, ob.err)
		}
		return true
	})
	if calls.Load() != 0 {
		t.Errorf("the handler ran %d times, want 0", calls.Load())
	}
	if dead, err := q.ListDead(context.Background(), st.Name); err != nil || len(dead) != 0 {
		t.Errorf("%d dead letters (%v), want none", len(dead), err)
	}
}

// A joined stage's Batch finds what Prepare returned for each message of its batch, in the
// batch's order; the stage's Handler (for a message the batch failed) finds its own.
func TestJoinedBatchFindsEachMessagesPrepared(t *testing.T) {
	db := queueTestDB(t, "")
	q := newTestQueue(t, db)
	var batches, singles atomic.Int32
	st := pipeline.Stage{Name: pipeline.StageAudit, Joined: true,
		Prepare: func(ctx context.Context, in message.Envelope) (any, error) { return "prepared " + in.ID, nil },
		Batch: func(ctx context.Context, ins []message.Envelope) ([][]message.Envelope, []error) {
			batches.Add(1)
			got := pipeline.PreparedBatch(ctx)
			errs := make([]error, len(ins))
			if len(got) != len(ins) {
				t.Errorf("PreparedBatch holds %d values for a batch of %d", len(got), len(ins))
			}
			for i, in := range ins {
				if i < len(got) && got[i] != "prepared "+in.ID {
					t.Errorf("message %d (%s): prepared %v", i, in.ID, got[i])
				}
				if in.ID == ins[len(ins)-1].ID {
					errs[i] = errors.New("the last one by itself") // handled one by one instead
				}
			}
			return make([][]message.Envelope, len(ins)), errs
		},
		Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			singles.Add(1)
			if got := pipeline.Prepared(ctx); got != "prepared "+in.ID {
				t.Errorf("%s: Prepared %v", in.ID, got)
			}
			if got := pipeline.PreparedBatch(ctx); got != nil {
				t.Errorf("%s: a single message's handler finds a batch's prepared values %v", in.ID, got)
			}
			return nil, nil
		}}
	for i := range 3 {
		sendEnvelope(t, q, st.Name, request(t, fmt.Sprintf("cr-prepared-%d", i)))
	}
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute}
	acked := 0
	run(t, r, o, func(ob observation) bool {
		if ob.action != pipeline.Ack {
			t.Errorf("action %v (%v)", ob.action, ob.err)
		}
		acked++
		return acked == 3
	})
	if batches.Load() == 0 || singles.Load() != 3 {
		t.Errorf("%d batches, %d single messages handled; want a batch, then each of the 3 one by one", batches.Load(), singles.Load())
	}
}

// A message that fails on its last receive is dead-lettered with its error, and what its last
// attempt wrote is undone with it, as any attempt to be retried: the dead letter records a
// failure, and nothing of the failed attempt stays (unlike a permanent failure's records).
func TestJoinedLastChanceDeadLetterUndoesItsWrites(t *testing.T) {
	db := queueTestDB(t, "")
	q, seen, ps := newTestQueue(t, db), newTestSeen(t, db), newTestParams(t, db)
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Joined: true, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		if _, err := ps.Put(ctx, params.PutInput{Name: "/joined/" + in.ID, Value: "v"}); err != nil {
			return nil, err
		}
		return nil, pipeline.Transient(errors.New("not now"))
	}}
	in := request(t, "cr-last")
	sendEnvelope(t, q, st.Name, in)
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute, MaxReceives: 1}
	run(t, r, o, func(ob observation) bool {
		if ob.action != pipeline.DeadLetter {
			t.Errorf("action %v (%v), want a dead letter", ob.action, ob.err)
		}
		return true
	})
	if v, _ := paramOf(t, db, "/joined/"+in.ID); v != "" {
		t.Errorf("the dead-lettered attempt's write stayed: %q", v)
	}
	if dead, err := q.ListDead(context.Background(), st.Name); err != nil || len(dead) != 1 || !strings.Contains(dead[0].Reason, "not now") {
		t.Errorf("dead letters %d (%v), want 1 with the handler's error", len(dead), err)
	}
}

// A key a worker that is not joined holds a live claim on (another process on the file, with
// another configuration) is not handled by a joined stage: the message is put back, and once
// the other worker marks the key it is a duplicate.
func TestJoinedStageRespectsAnotherWorkersClaim(t *testing.T) {
	ctx := context.Background()
	db := queueTestDB(t, "")
	q, seen := newTestQueue(t, db), newTestSeen(t, db)
	var calls atomic.Int32
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Joined: true, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		calls.Add(1)
		return skipped(in), nil
	}}
	const key = "resolve|request:cr-claimed"
	if ok, err := seen.Claim(ctx, key, time.Minute); !ok || err != nil {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	sendEnvelope(t, q, st.Name, request(t, "cr-claimed"))
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute}
	retries := 0
	run(t, r, o, func(ob observation) bool {
		switch ob.action {
		case pipeline.Retry:
			var ip *pipeline.InProgress
			if !errors.As(ob.err, &ip) {
				t.Errorf("retry with %v", ob.err)
			}
			if retries++; retries == 1 {
				if err := seen.Mark(ctx, key); err != nil { // the other worker finishes
					t.Error(err)
				}
			}
			return false
		case pipeline.Duplicate:
			return true
		default:
			t.Errorf("action %v (%v)", ob.action, ob.err)
			return true
		}
	})
	if calls.Load() != 0 || retries != 1 {
		t.Errorf("handler calls %d, retries %d; want 0 and 1", calls.Load(), retries)
	}
}
