package audittest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
)

// testPages: audit.Page over the log walks Query's order page by page, each record once, even
// when many records share an instant (more than a page of them).
func testPages(t *testing.T, f fixture) {
	var recs []audit.Record
	for i := range 23 {
		at := time.Duration(i/8) * time.Second // 8 records per instant, in 3 chains
		recs = append(recs, f.rec(fmt.Sprintf("r%02d", i), fmt.Sprintf("c%d", i%3), at))
	}
	f.appendN(t, len(recs), recs...)
	q := audit.Query{Correlation: f.p + "-corr-1"}
	want := ids(f, f.query(t, q))
	if len(want) != len(recs) {
		t.Fatalf("Query found %d records, want %d", len(want), len(recs))
	}
	for _, limit := range []int{1, 3, 10, 23, 50} {
		var got []string
		var from *audit.Cursor
		for pages := 0; ; pages++ {
			if pages > len(recs) {
				t.Fatalf("limit %d: more pages than records", limit)
			}
			page, next, more, err := audit.Page(t.Context(), f.log, q, from, limit)
			if err != nil {
				t.Fatalf("Page: %v", err)
			}
			if len(page) > limit || (more && len(page) != limit) {
				t.Fatalf("limit %d: a page of %d, more %v", limit, len(page), more)
			}
			got = append(got, ids(f, page)...)
			if !more {
				break
			}
			// A cursor survives its text form.
			c, err := audit.ParseCursor(next.String())
			if err != nil || !c.At.Equal(next.At) || c.Chain != next.Chain || c.Seq != next.Seq || c.Horizon != next.Horizon {
				t.Fatalf("cursor %+v read back as %+v (%v)", next, c, err)
			}
			from = &c
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: pages gave %v, want %v", limit, got, want)
		}
	}
	// Filters hold with paging: the records after the first instant.
	page, _, more, err := audit.Page(t.Context(), f.log, audit.Query{Correlation: q.Correlation, Since: t0.Add(time.Second)}, nil, 100)
	if err != nil || more || len(page) != len(recs)-8 {
		t.Errorf("since the second instant: %d records, more %v, %v; want %d", len(page), more, err, len(recs)-8)
	}
	if _, err := audit.ParseCursor("not-a-cursor"); !errors.Is(err, audit.ErrBadCursor) {
		t.Errorf("ParseCursor of garbage = %v, want ErrBadCursor", err)
	}
}

// testPagesLateRecords: a record appended after a reader started paging, with an occurrence
// time before the reader's position (a late message, a skewed clock), is not skipped: the reader
// following the cursors gets it once, after the records it was paging through; one coming back
// later with the last cursor gets what was appended since, and only that. Since and Until still
// filter by occurrence time.
func testPagesLateRecords(t *testing.T, f fixture) {
	var recs []audit.Record
	for i := range 10 {
		recs = append(recs, f.rec(fmt.Sprintf("r%02d", i), "c0", time.Duration(i)*time.Second))
	}
	f.appendN(t, len(recs), recs...)
	q := audit.Query{Correlation: f.p + "-corr-1"}
	read := func(from *audit.Cursor, limit int) ([]string, audit.Cursor) {
		t.Helper()
		var got []string
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("more than 20 pages")
			}
			page, next, more, err := audit.Page(t.Context(), f.log, q, from, limit)
			if err != nil {
				t.Fatalf("Page: %v", err)
			}
			got = append(got, ids(f, page)...)
			c, err := audit.ParseCursor(next.String())
			if err != nil {
				t.Fatalf("cursor %+v: %v", next, err)
			}
			if !more {
				return got, c
			}
			from = &c
		}
	}
	page, next, more, err := audit.Page(t.Context(), f.log, q, nil, 3)
	if err != nil || !more || !slices.Equal(ids(f, page), []string{"r00", "r01", "r02"}) {
		t.Fatalf("first page: %v, more %v, %v", ids(f, page), more, err)
	}
	// Appended while the reader is on its first page: one late, one in order.
	f.appendN(t, 2, f.rec("late1", "c1", 500*time.Millisecond), f.rec("new1", "c1", 20*time.Second))
	rest, last := read(&next, 3)
	want := []string{"r03", "r04", "r05", "r06", "r07", "r08", "r09", "late1", "new1"}
	if !slices.Equal(rest, want) {
		t.Errorf("the pages after the first gave %v, want %v: a record appended late is skipped or repeated", rest, want)
	}
	// Coming back later with the last cursor: what was appended since, however early it occurred.
	// One Append of records of two chains: the log may record the chains in either order (the
	// DynamoDB log writes a transaction per chain), so their order is not asked.
	f.appendN(t, 2, f.rec("late2", "c2", 0), f.rec("late3", "c0", 1500*time.Millisecond))
	again, last2 := read(&last, 1)
	slices.Sort(again)
	if !slices.Equal(again, []string{"late2", "late3"}) {
		t.Errorf("resumed with the last cursor: %v, want [late2 late3]", again)
	}
	if none, _ := read(&last2, 5); len(none) != 0 {
		t.Errorf("resumed again with nothing appended: %v, want nothing", none)
	}
	// Since filters by occurrence time, before and after the catching up.
	q.Since = t0.Add(time.Second)
	all, lastSince := read(nil, 4)
	if len(all) != 11 || slices.Contains(all, "r00") || slices.Contains(all, "late1") || slices.Contains(all, "late2") {
		t.Errorf("since the second instant: %v", all)
	}
	f.appendN(t, 2, f.rec("late4", "c1", 200*time.Millisecond), f.rec("late5", "c1", 1200*time.Millisecond))
	if got, _ := read(&lastSince, 4); !slices.Equal(got, []string{"late5"}) {
		t.Errorf("since the second instant, resumed: %v, want [late5]", got)
	}
}
