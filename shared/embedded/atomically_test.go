package embedded_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/params"
)

// Writes of several stores made through Atomically's context commit together, and none of
// them when fn fails; inside, they are visible through that context, and a nested Atomically is
// a savepoint: its failure undoes its own writes only.
func TestAtomically(t *testing.T) {
	ctx := t.Context()
	db := queueTestDB(t, "")
	ps, err := embedded.NewParamStore(db, "acct")
	if err != nil {
		t.Fatal(err)
	}
	p := db.SerializeParams(ps)
	raw, err := embedded.NewChangeSets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	cs := db.SerializeChangeSets(raw)
	if _, err := cs.Create(ctx, &changeset.ChangeSet{ID: "c", Env: "prod", CreatedAt: time.Now(), Nodes: map[string]*changeset.Node{}}); err != nil {
		t.Fatal(err)
	}
	write := func(ctx context.Context, value string) error {
		if _, err := p.Put(ctx, params.PutInput{Name: "/iac/a/b/runtime", Value: value}); err != nil {
			return err
		}
		_, err := cs.Update(ctx, "c", func(c *changeset.ChangeSet) error { c.Commit = value; return nil })
		return err
	}
	state := func() (string, string) {
		t.Helper()
		got, err := p.Get(ctx, "/iac/a/b/runtime")
		if err != nil && !errors.Is(err, params.ErrNotFound) {
			t.Fatal(err)
		}
		c, err := cs.Get(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		return got.Value, c.Commit
	}

	boom := errors.New("boom")
	if err := db.Atomically(ctx, func(ctx context.Context) error {
		if err := write(ctx, `{"v":1}`); err != nil {
			return err
		}
		if got, err := p.Get(ctx, "/iac/a/b/runtime"); err != nil || got.Value != `{"v":1}` {
			t.Errorf("inside, the parameter reads %q, %v", got.Value, err)
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Atomically = %v, want fn's error", err)
	}
	if v, c := state(); v != "" || c != "" {
		t.Fatalf("after a failed fn: parameter %q, change set commit %q; want nothing written", v, c)
	}

	if err := db.Atomically(ctx, func(ctx context.Context) error {
		if err := write(ctx, `{"v":2}`); err != nil {
			return err
		}
		// a nested one that fails undoes only its own writes
		if err := db.Atomically(ctx, func(ctx context.Context) error {
			if err := write(ctx, `{"v":3}`); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Errorf("nested Atomically = %v, want its error", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v, c := state(); v != `{"v":2}` || c != `{"v":2}` {
		t.Fatalf("after fn: parameter %q, change set commit %q; want both {\"v\":2}", v, c)
	}
}
