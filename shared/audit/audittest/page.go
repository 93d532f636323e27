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
			page, next, err := audit.Page(t.Context(), f.log, q, from, limit)
			if err != nil {
				t.Fatalf("Page: %v", err)
			}
			if len(page) > limit || (next != nil && len(page) != limit) {
				t.Fatalf("limit %d: a page of %d, next %v", limit, len(page), next)
			}
			got = append(got, ids(f, page)...)
			if next == nil {
				break
			}
			// A cursor survives its text form.
			c, err := audit.ParseCursor(next.String())
			if err != nil || !c.At.Equal(next.At) || c.Chain != next.Chain || c.Seq != next.Seq {
				t.Fatalf("cursor %+v read back as %+v (%v)", next, c, err)
			}
			from = &c
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: pages gave %v, want %v", limit, got, want)
		}
	}
	// Filters hold with paging: the records after the first instant.
	page, next, err := audit.Page(t.Context(), f.log, audit.Query{Correlation: q.Correlation, Since: t0.Add(time.Second)}, nil, 100)
	if err != nil || next != nil || len(page) != len(recs)-8 {
		t.Errorf("since the second instant: %d records, next %v, %v; want %d", len(page), next, err, len(recs)-8)
	}
	if _, err := audit.ParseCursor("not-a-cursor"); !errors.Is(err, audit.ErrBadCursor) {
		t.Errorf("ParseCursor of garbage = %v, want ErrBadCursor", err)
	}
}
