package embedded

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/params/paramstest"
)

const account = "111111111111"

// openTemp opens a fresh file in a directory Open has to create.
func openTemp(t *testing.T) *DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "state", "karma.db"))
}

func openAt(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newStore(t *testing.T, db *DB, acct string) *ParamStore {
	t.Helper()
	s, err := NewParamStore(db, acct)
	if err != nil {
		t.Fatalf("NewParamStore: %v", err)
	}
	return s
}

func mustPut(t *testing.T, s *ParamStore, in params.PutInput) params.PutResult {
	t.Helper()
	res, err := s.Put(t.Context(), in)
	if err != nil {
		t.Fatalf("Put(%s): %v", in.Name, err)
	}
	return res
}

func TestParamStoreConformance(t *testing.T) {
	t.Parallel()
	paramstest.Run(t, func(t *testing.T) params.Store { return newStore(t, openTemp(t), account) })
}

func TestOpenPragmas(t *testing.T) {
	t.Parallel()
	db := openTemp(t) // its parent directory "state" did not exist
	for pragma, want := range map[string]string{"journal_mode": "wal", "busy_timeout": "5000", "foreign_keys": "1"} {
		var got string
		if err := db.SQL.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q (%v), want %q", pragma, got, err, want)
		}
	}
	if _, err := Open(""); err == nil {
		t.Errorf("Open(\"\") succeeded")
	}
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "karma.db")
	name := "/iac/network/main/config"
	for i, want := range []params.PutResult{{Version: 1, Changed: true}, {Version: 1, Changed: false}} {
		db, err := Open(path)
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		s := newStore(t, db, account)
		if got := mustPut(t, s, params.PutInput{Name: name, Value: "v1", User: "alice"}); got != want {
			t.Fatalf("Put #%d: got %+v, want %+v", i, got, want)
		}
		if p, err := s.Get(t.Context(), name); err != nil || p.Value != "v1" || p.LastModifiedUser != "alice" {
			t.Fatalf("Get #%d: %+v, %v", i, p, err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i, err)
		}
	}
}

// Two goroutines, each with its own *DB on the same file (as two karma processes would be),
// write the same parameter: every write lands, versions stay consecutive, none is lost.
func TestConcurrentPuts(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "karma.db")
	const writers, perWriter = 2, 40
	name := "/iac/queue/main/config"
	var wg sync.WaitGroup
	for w := range writers {
		s := newStore(t, openAt(t, path), account)
		wg.Go(func() {
			for i := range perWriter {
				in := params.PutInput{Name: name, Value: fmt.Sprintf("w%d-%d", w, i)}
				if res, err := s.Put(t.Context(), in); err != nil || !res.Changed {
					t.Errorf("writer %d Put %d: %+v, %v", w, i, res, err)
				}
				own := params.PutInput{Name: fmt.Sprintf("/iac/w%d/p%d/config", w, i), Value: "x"}
				if _, err := s.Put(t.Context(), own); err != nil {
					t.Errorf("writer %d Put %s: %v", w, own.Name, err)
				}
			}
		})
	}
	wg.Wait()
	s := newStore(t, openAt(t, path), account)
	hist, err := s.History(t.Context(), name)
	if err != nil || len(hist) != writers*perWriter {
		t.Fatalf("History: %d versions, %v; want %d", len(hist), err, writers*perWriter)
	}
	for i, p := range hist {
		if p.Version != int64(i+1) {
			t.Fatalf("History[%d].Version = %d, want %d", i, p.Version, i+1)
		}
	}
	all, err := s.GetByPath(t.Context(), "/iac")
	if err != nil || len(all) != 1+writers*perWriter {
		t.Fatalf("GetByPath: %d parameters, %v; want %d", len(all), err, 1+writers*perWriter)
	}
}

func TestHistoryAndProvenance(t *testing.T) {
	t.Parallel()
	s := newStore(t, openTemp(t), account)
	name := "/iac/app/api/config"
	mustPut(t, s, params.PutInput{Name: name, Value: "a", Description: "karma: commit=1", User: "ci"})
	mustPut(t, s, params.PutInput{Name: name, Value: "a", Description: "ignored: value unchanged"})
	mustPut(t, s, params.PutInput{Name: name, Value: "b", Description: "karma: commit=2", User: "bob"})
	hist, err := s.History(t.Context(), name)
	if err != nil || len(hist) != 2 {
		t.Fatalf("History: %+v, %v; want 2 versions", hist, err)
	}
	if h := hist[0]; h.Version != 1 || h.Value != "a" || h.Description != "karma: commit=1" || h.LastModifiedUser != "ci" {
		t.Errorf("History[0] = %+v", h)
	}
	if h := hist[1]; h.Version != 2 || h.Value != "b" || h.Description != "karma: commit=2" || h.LastModifiedUser != "bob" {
		t.Errorf("History[1] = %+v", h)
	}
	if _, err := s.History(t.Context(), "/iac/none"); !errors.Is(err, params.ErrNotFound) {
		t.Errorf("History(missing): %v, want params.ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.History(t.Context(), name); !errors.Is(err, params.ErrNotFound) {
		t.Errorf("History after Delete: %v, want params.ErrNotFound", err)
	}
}

func TestAccountsAreIsolated(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	dev, prod := newStore(t, db, "111111111111"), newStore(t, db, "222222222222")
	mustPut(t, dev, params.PutInput{Name: "/iac/environment", Value: "dev"})
	if _, err := prod.Get(t.Context(), "/iac/environment"); !errors.Is(err, params.ErrNotFound) {
		t.Fatalf("prod sees dev's parameter: %v", err)
	}
	if got := mustPut(t, prod, params.PutInput{Name: "/iac/environment", Value: "prod"}); got.Version != 1 {
		t.Fatalf("prod Put: %+v, want version 1", got)
	}
	if all, err := dev.GetByPath(t.Context(), "/"); err != nil || len(all) != 1 || all[0].Value != "dev" {
		t.Fatalf("dev GetByPath(/): %+v, %v", all, err)
	}
}

func TestTierAndTypeRules(t *testing.T) {
	t.Parallel()
	s := newStore(t, openTemp(t), account)
	big, name := strings.Repeat("x", 5000), "/iac/big/config"
	tier := func() (tier string) {
		err := s.db.SQL.QueryRowContext(t.Context(), "SELECT tier FROM params WHERE name = ?", name).Scan(&tier)
		if err != nil {
			t.Fatalf("read tier: %v", err)
		}
		return tier
	}
	mustPut(t, s, params.PutInput{Name: name, Value: big})
	if got := tier(); got != params.TierAdvanced {
		t.Fatalf("tier after 5 KB put = %s, want Advanced", got)
	}
	mustPut(t, s, params.PutInput{Name: name, Value: "small"}) // tier left empty: stays Advanced
	if got := tier(); got != params.TierAdvanced {
		t.Fatalf("tier after small put = %s, want Advanced (SSM never downgrades)", got)
	}
	for _, in := range []params.PutInput{
		{Name: name, Value: "smaller", Tier: params.TierStandard},
		{Name: name, Value: "small", Type: params.TypeSecureString},
	} {
		var ve *params.InvalidError
		if _, err := s.Put(t.Context(), in); !errors.As(err, &ve) || !strings.Contains(err.Error(), name) {
			t.Errorf("Put(%+v): %v, want a *params.InvalidError naming the parameter", in, err)
		}
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	s := newStore(t, openTemp(t), account)
	ok := "/iac/app/api/config"
	tests := []struct {
		name string
		in   params.PutInput
		want string
	}{
		{"no leading slash", params.PutInput{Name: "iac/x", Value: "v"}, "must start with '/'"},
		{"empty name", params.PutInput{Name: "", Value: "v"}, "must start with '/'"},
		{"double slash", params.PutInput{Name: "/iac//x", Value: "v"}, "empty path segment"},
		{"trailing slash", params.PutInput{Name: "/iac/x/", Value: "v"}, "empty path segment"},
		{"root", params.PutInput{Name: "/", Value: "v"}, "empty path segment"},
		{"space", params.PutInput{Name: "/iac/a b", Value: "v"}, "not allowed"},
		{"unicode", params.PutInput{Name: "/iac/é", Value: "v"}, "not allowed"},
		{"reserved aws", params.PutInput{Name: "/aws/x", Value: "v"}, `"aws" or "ssm"`},
		{"reserved ssm", params.PutInput{Name: "/SSMthing/x", Value: "v"}, `"aws" or "ssm"`},
		{"too long", params.PutInput{Name: "/" + strings.Repeat("a", params.MaxNameLength), Value: "v"}, "characters long"},
		{"too deep", params.PutInput{Name: strings.Repeat("/a", 16), Value: "v"}, "levels deep"},
		{"empty value", params.PutInput{Name: ok, Value: ""}, "empty value"},
		{"over 8 KB", params.PutInput{Name: ok, Value: strings.Repeat("v", 8193)}, "at most 8192"},
		{"over 4 KB forced Standard", params.PutInput{Name: ok, Value: strings.Repeat("v", 4097),
			Tier: params.TierStandard}, "Standard tier allows 4096"},
		{"bad type", params.PutInput{Name: ok, Value: "v", Type: "Binary"}, "type \"Binary\""},
		{"bad tier", params.PutInput{Name: ok, Value: "v", Tier: "Intelligent-Tiering"}, "tier"},
		{"long description", params.PutInput{Name: ok, Value: "v", Description: strings.Repeat("d", 1025)}, "description"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := s.Put(t.Context(), tc.in)
			var ve *params.InvalidError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in.Name)) {
				t.Fatalf("Put: %v; want a *params.InvalidError naming %q and containing %q", err, tc.in.Name, tc.want)
			}
		})
	}
	for _, in := range []params.PutInput{
		{Name: strings.Repeat("/a", 15), Value: "v"},
		{Name: "/" + strings.Repeat("a", params.MaxNameLength-1), Value: strings.Repeat("v", 8192)},
		{Name: "/Iac_1/a-b.c/config", Value: "v", Tier: params.TierStandard, Description: strings.Repeat("d", 1024)},
	} {
		if _, err := s.Put(t.Context(), in); err != nil {
			t.Errorf("Put at the limits (%.40s...): %v", in.Name, err)
		}
	}
	if _, err := s.GetByPath(t.Context(), "iac"); err == nil {
		t.Errorf("GetByPath(\"iac\") succeeded, want a *params.InvalidError")
	}
}

// Not parallel: the counters are process-wide. A new version is one statement (the history
// row, which the trigger makes current); an identical value reads and writes nothing more than
// the current version's row; a binary from before the trigger, which wrote params and then the
// history row itself, leaves the file as consistent as Put does.
func TestPutWritesTheCurrentVersionThroughItsHistory(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, openTemp(t), account)
	name := "/iac/site/www/runtime"
	mustPut(t, s, params.PutInput{Name: name, Value: `{"a":1}`})
	before := Counters()
	if r := mustPut(t, s, params.PutInput{Name: name, Value: `{"a":2}`, User: "u"}); r.Version != 2 || !r.Changed {
		t.Fatalf("second put: %+v, want version 2, changed", r)
	}
	if got := Counters().Sub(before); got.Statements() != 1 || got.WriteTxs != 1 {
		t.Fatalf("a new version took %+v, want 1 statement in 1 write transaction", got)
	}
	before = Counters()
	if r := mustPut(t, s, params.PutInput{Name: name, Value: `{"a":2}`}); r.Version != 2 || r.Changed {
		t.Fatalf("identical put: %+v, want version 2, unchanged", r)
	}
	if got := Counters().Sub(before); got.Statements() != 2 {
		t.Fatalf("an identical value took %d statements, want 2 (the write that writes nothing, the read)", got.Statements())
	}
	p, err := s.Get(ctx, name)
	if err != nil || p.Version != 2 || p.Value != `{"a":2}` || p.LastModifiedUser != "u" {
		t.Fatalf("Get: %+v, %v; want version 2 by u", p, err)
	}
	// What the binary before the trigger did for version 3.
	const row = `(account, name, value, type, tier, version, modified_at, modified_by, description) VALUES (?, ?, '{"a":3}', 'String', 'Standard', 3, 1, 'old', '')`
	if _, err := s.db.SQL.ExecContext(ctx, `INSERT OR REPLACE INTO params `+row, account, name); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.SQL.ExecContext(ctx, `INSERT INTO params_history `+row, account, name); err != nil {
		t.Fatalf("the old binary's history insert: %v", err)
	}
	if r := mustPut(t, s, params.PutInput{Name: name, Value: `{"a":4}`}); r.Version != 4 {
		t.Fatalf("put after the old binary's: %+v, want version 4", r)
	}
	h, err := s.History(ctx, name)
	if err != nil || len(h) != 4 {
		t.Fatalf("History: %d versions, %v; want 4", len(h), err)
	}
	for i, v := range h {
		if v.Version != int64(i+1) {
			t.Fatalf("History[%d] is version %d", i, v.Version)
		}
	}
	if p, err := s.Get(ctx, name); err != nil || p.Version != 4 || p.Value != `{"a":4}` {
		t.Fatalf("Get: %+v, %v; want version 4", p, err)
	}
}
