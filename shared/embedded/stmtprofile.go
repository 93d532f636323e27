package embedded

// Statement profile: where the SQL time goes, statement by statement. Off unless a benchmark
// turns it on (ProfileStatements); then the driver wrapper (stats.go) times every statement by
// its text — an Exec from call to return, a query from call to its last row (every Next of its
// rows), and each COMMIT — over every embedded DB of the process. A CPU profile shows SQLite's
// time as one lump under the driver; this names the statements. Off, it costs one atomic load
// per statement.

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// StatementTime is what one statement text took while the profile was on.
type StatementTime struct {
	SQL  string
	Runs int64 // Execs, queries, or commits
	Rows int64 // rows a query returned (0 for an Exec)
	Time time.Duration
}

// commitText is the text COMMITs are reported under (the driver runs them without one).
const commitText = "COMMIT"

var stmtProfile struct {
	on atomic.Bool
	mu sync.Mutex
	by map[string]*StatementTime
}

// ProfileStatements starts timing every statement of the process's embedded DBs, from zero; the
// function it returns stops and returns what each text took, the longest first. One profile at a
// time: starting another discards the first's figures.
func ProfileStatements() (stop func() []StatementTime) {
	stmtProfile.mu.Lock()
	stmtProfile.by = map[string]*StatementTime{}
	stmtProfile.mu.Unlock()
	stmtProfile.on.Store(true)
	return func() []StatementTime {
		stmtProfile.on.Store(false)
		stmtProfile.mu.Lock()
		defer stmtProfile.mu.Unlock()
		out := make([]StatementTime, 0, len(stmtProfile.by))
		for _, s := range stmtProfile.by {
			out = append(out, *s)
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Time != out[j].Time {
				return out[i].Time > out[j].Time
			}
			return out[i].SQL < out[j].SQL
		})
		return out
	}
}

// profiling is whether statements are being timed; start is when a statement began if so.
func profiling() (start time.Time, on bool) {
	if !stmtProfile.on.Load() {
		return time.Time{}, false
	}
	return time.Now(), true
}

// profiled adds a run (runs 1) or a row (rows 1) of query and the time since start.
func profiled(query string, start time.Time, runs, rows int64) {
	d := time.Since(start)
	stmtProfile.mu.Lock()
	defer stmtProfile.mu.Unlock()
	if stmtProfile.by == nil {
		return
	}
	s := stmtProfile.by[query]
	if s == nil {
		s = &StatementTime{SQL: query}
		stmtProfile.by[query] = s
	}
	s.Runs += runs
	s.Rows += rows
	s.Time += d
}
