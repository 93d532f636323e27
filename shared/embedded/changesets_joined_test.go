package embedded_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/changeset/changesettest"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// A joined stage (join.go) updates change sets inside the exchange's transaction: it reads its
// own uncommitted writes (the updates, and the ordering's questions: Unfinished, Finished,
// EachCommit), and an attempt that is tried again leaves nothing behind — not in the file, and
// not through the documents the store remembers (changesets_docs.go): the update of the second
// attempt, which the remembered document of the first says is already made, is made.
func TestJoinedChangeSetUpdatesSeeTheirOwnWritesAndSurviveARetry(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	q, seen := newTestQueue(t, db), newTestSeen(t, db)
	s, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	store := db.SerializeChangeSets(s)
	shared := changesettest.Sample("shared", 1)
	shared.Env = "prod"
	if _, err := store.Create(ctx, shared); err != nil {
		t.Fatal(err)
	}
	var failed atomic.Bool
	if changeset.Serialized(ctx, store) {
		t.Error("outside a joined stage's transaction the store says it is serialized")
	}
	st := pipeline.Stage{Name: pipeline.StageResolve, Seen: seen, Joined: true, Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		if !changeset.Serialized(ctx, store) {
			t.Error("inside a joined stage's transaction the store does not say it is serialized")
		}
		got, err := store.Update(ctx, shared.ID, func(cs *changeset.ChangeSet) error {
			if !slices.Contains(cs.PushAuthors, in.ID) {
				cs.PushAuthors = append(cs.PushAuthors, in.ID)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		again, err := store.Get(ctx, shared.ID)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(again.PushAuthors, got.PushAuthors) || !slices.Contains(got.PushAuthors, in.ID) {
			t.Errorf("%s: the stage reads %v after its update returned %v", in.ID, again.PushAuthors, got.PushAuthors)
		}
		own := changesettest.Sample("own-"+in.ID, 1)
		own.Env, own.Commit, own.CreatedAt = "prod", "commit-"+in.ID, time.Now()
		if created, err := store.Create(ctx, own); err != nil || !created {
			t.Errorf("%s: Create = %v, %v; want a new change set (a failed attempt's is undone)", in.ID, created, err)
		}
		unfinished, err := changeset.Unfinished(ctx, store, "prod", []string{"dev/service/component-0000"})
		if err != nil || !slices.ContainsFunc(unfinished, func(q changeset.Queued) bool { return q.ID == own.ID }) {
			t.Errorf("%s: Unfinished does not see the stage's own change set: %+v, %v", in.ID, unfinished, err)
		}
		if done, err := changeset.Finished(ctx, store, []string{own.ID}); err != nil || len(done) != 0 {
			t.Errorf("%s: Finished of the stage's own unfinished change set: %v, %v", in.ID, done, err)
		}
		var first string
		if err := changeset.EachCommit(ctx, store, "prod", func(c string) (bool, error) { first = c; return false, nil }); err != nil || first != own.Commit {
			t.Errorf("%s: the newest commit is %q (%v), want the stage's own %q", in.ID, first, err, own.Commit)
		}
		if in.ID == "b" && failed.CompareAndSwap(false, true) {
			return nil, pipeline.Transient(errors.New("try b again"))
		}
		return skipped(in), nil
	}}
	for _, id := range []string{"a", "c", "b"} { // b last: nothing refreshes what the store remembers before b's retry
		e := request(t, id)
		e.ID = id
		sendEnvelope(t, q, st.Name, e)
	}
	o := newObserver()
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quiet, Observe: o.observe, Visibility: time.Minute, RetryBase: 10 * time.Millisecond}
	acks := 0
	run(t, r, o, func(ob observation) bool {
		if ob.action == pipeline.Ack {
			acks++
		} else if ob.action != pipeline.Retry {
			t.Errorf("action %v (%v)", ob.action, ob.err)
		}
		return acks == 3
	})
	if !failed.Load() {
		t.Fatal("b was not tried again")
	}
	fresh, err := embedded.NewChangeSets(ctx, db) // remembers nothing
	if err != nil {
		t.Fatal(err)
	}
	got, err := fresh.Get(ctx, shared.ID)
	if err != nil {
		t.Fatal(err)
	}
	authors := slices.Sorted(slices.Values(got.PushAuthors))
	if !slices.Equal(authors, []string{"a", "b", "c"}) {
		t.Errorf("after the exchanges: %v; want each stage's update once (b's made again after its retry)", got.PushAuthors)
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, err := fresh.Get(ctx, "own-"+id); err != nil {
			t.Errorf("%s's own change set: %v", id, err)
		}
	}
}
