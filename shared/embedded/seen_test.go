package embedded_test

import (
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/pipeline/seentest"
)

func TestSeenConformance(t *testing.T) {
	seentest.Run(t, func(t *testing.T) pipeline.Seen {
		s, err := embedded.NewSeen(t.Context(), queueTestDB(t, ""))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSeenConformanceSharedFile(t *testing.T) {
	db := queueTestDB(t, "")
	var once sync.Once
	var s *embedded.Seen
	seentest.Run(t, func(t *testing.T) pipeline.Seen {
		once.Do(func() {
			var err error
			if s, err = embedded.NewSeen(t.Context(), db); err != nil {
				t.Fatal(err)
			}
		})
		return s
	})
}

// Two processes on one file: each has its own Seen.
func TestSeenHoldersConformance(t *testing.T) {
	db := queueTestDB(t, "")
	seentest.RunHolders(t, func(t *testing.T) (pipeline.Seen, pipeline.Seen) {
		a, err := embedded.NewSeen(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		b, err := embedded.NewSeen(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	})
}

func TestRecordsConformance(t *testing.T) {
	db := queueTestDB(t, "")
	seentest.RunRecords(t, func(t *testing.T) pipeline.Records {
		s, err := embedded.NewSeen(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// A claim taken over by ClaimAll (a batch, an exchange) after Claim's ran out is the batch's: the
// first holder's Release leaves it, and its Renew reports its own claim lost.
func TestClaimAllTakesOverAClaimFromItsFirstHolder(t *testing.T) {
	db := queueTestDB(t, "")
	a, err := embedded.NewSeen(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	b, err := embedded.NewSeen(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Claim(t.Context(), "k", 50*time.Millisecond); !ok || err != nil {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	time.Sleep(200 * time.Millisecond)
	if st, err := b.ClaimAll(t.Context(), []string{"k"}, time.Minute); err != nil || st[0] != pipeline.ClaimTaken {
		t.Fatalf("ClaimAll = %v, %v; want the key taken over", st, err)
	}
	if live, err := a.Renew(t.Context(), "k", time.Minute); live || err != nil {
		t.Errorf("the first holder's Renew = %v, %v; want its claim lost", live, err)
	}
	if err := a.Release(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Claim(t.Context(), "k", time.Minute); ok || err != nil {
		t.Errorf("Claim after the first holder's Release = %v, %v; want the batch's claim to hold", ok, err)
	}
}

// withoutRowid is whether table is a WITHOUT ROWID table of db's file.
func withoutRowid(t *testing.T, db *embedded.DB, table string) bool {
	t.Helper()
	var wr int
	if err := db.SQL.QueryRow(`SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?`, table).Scan(&wr); err != nil {
		t.Fatalf("%s: %v", table, err)
	}
	return wr == 1
}

// A file made before the keys' tables were WITHOUT ROWID (rowid tables: each key written in
// two B-trees) is rebuilt when it is opened, keeping every key marked done and every claim with
// its holder, expiry and token; the trigger that drops a marked key's claim works on the
// rebuilt tables; a file opened again, or made new, is left as it is.
func TestSeenRebuildsOlderKeyTablesWithoutRowid(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "karma.db")
	old := queueTestDB(t, path)
	future := time.Now().Add(time.Hour).UnixNano()
	for _, s := range []string{
		// The tables as NewSeen created them before (the claims' columns added by later versions).
		`CREATE TABLE handled (key TEXT PRIMARY KEY)`,
		`CREATE TABLE claims (key TEXT PRIMARY KEY, expires INTEGER NOT NULL)`,
		`CREATE TABLE records (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
		`ALTER TABLE claims ADD COLUMN holder TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE claims ADD COLUMN token TEXT NOT NULL DEFAULT ''`,
		`CREATE TRIGGER handled_drops_claim AFTER INSERT ON handled BEGIN DELETE FROM claims WHERE key = NEW.key; END`,
		`INSERT INTO handled (key) VALUES ('plan|a'), ('apply|b')`,
		`INSERT INTO claims (key, expires, holder, token) VALUES ('plan|held', ` + strconv.FormatInt(future, 10) + `, 'h1', 't1'),
			('apply|c', ` + strconv.FormatInt(future, 10) + `, 'h2', '')`,
		`INSERT INTO records (key, value) VALUES ('r', 'v')`,
	} {
		if _, err := old.SQL.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if withoutRowid(t, old, "handled") || withoutRowid(t, old, "claims") {
		t.Fatal("the older file's tables are WITHOUT ROWID already")
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	for range 2 { // opened twice: the second start finds the tables rebuilt
		db := queueTestDB(t, path)
		s, err := embedded.NewSeen(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"handled", "claims"} {
			if !withoutRowid(t, db, table) {
				t.Errorf("%s is still a rowid table", table)
			}
		}
		done, held, err := s.KeyStates(ctx, []string{"plan|a", "apply|b", "plan|held", "apply|c", "other"})
		if err != nil {
			t.Fatal(err)
		}
		if !done["plan|a"] || !done["apply|b"] || len(done) != 2 || !held["plan|held"] || !held["apply|c"] || len(held) != 2 {
			t.Errorf("after the rebuild: done %v, held %v; want plan|a and apply|b done, plan|held and apply|c held", done, held)
		}
		var holder, token string
		var expires int64
		if err := db.SQL.QueryRow(`SELECT holder, token, expires FROM claims WHERE key = 'plan|held'`).Scan(&holder, &token, &expires); err != nil ||
			holder != "h1" || token != "t1" || expires != future {
			t.Errorf("claim plan|held: holder %q token %q expires %d (%v), want h1 t1 %d", holder, token, expires, err, future)
		}
		if v, err := s.Recorded(ctx, "r"); err != nil || v != "v" {
			t.Errorf("record r = %q, %v", v, err)
		}
		db.Close()
	}

	// The trigger survived: marking a claimed key done drops its claim.
	db := queueTestDB(t, path)
	s, err := embedded.NewSeen(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Mark(ctx, "apply|c"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.SQL.QueryRow(`SELECT count(*) FROM claims WHERE key = 'apply|c'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("apply|c marked done keeps %d claims (%v)", n, err)
	}
	if err := db.SQL.QueryRow(`SELECT count(*) FROM claims`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d claims left, want plan|held's (%v)", n, err)
	}
	var triggerSQL string
	if err := db.SQL.QueryRow(`SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = 'handled_drops_claim'`).Scan(&triggerSQL); err != nil {
		t.Errorf("handled_drops_claim: %v", err)
	}

	// A new file is made WITHOUT ROWID.
	fresh := queueTestDB(t, "")
	if _, err := embedded.NewSeen(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"handled", "claims"} {
		if !withoutRowid(t, fresh, table) {
			t.Errorf("a new file's %s is a rowid table", table)
		}
	}
}
