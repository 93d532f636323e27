package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
)

// GET /log's pages do not skip a record recorded late — with an occurred_at before the records a
// reader already read — while the reader follows next_cursor, nor after: the last page's
// resume_cursor, asked later, answers what was recorded since, and only that.
func TestLogPagesShowRecordsRecordedLate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	at := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	rec := func(id string, offset time.Duration) audit.Record {
		return audit.Record{MessageID: id, Type: "deployment.applied", Version: 1, Env: "prod", Chain: "prod/vpc/core", Component: "prod/vpc/core",
			CorrelationID: "late", ActorKind: "git", Actor: "ada", OccurredAt: at.Add(offset), Body: []byte(`{}`)}
	}
	add := func(recs ...audit.Record) {
		t.Helper()
		if _, err := h.audit.Append(t.Context(), recs...); err != nil {
			t.Fatal(err)
		}
	}
	get := func(cursor string) LogPage {
		t.Helper()
		u := "/log?correlation=late&limit=2"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var p LogPage
		r := h.call("GET", u, "reader", nil).want(http.StatusOK)
		r.decode(&p)
		if (p.NextCursor == "") == (p.ResumeCursor == "") || (p.NextCursor == "") != (r.Header.Get("Link") == "") {
			t.Fatalf("GET %s: next_cursor %q, resume_cursor %q, Link %q: want one cursor, Link with next_cursor", u, p.NextCursor, p.ResumeCursor, r.Header.Get("Link"))
		}
		return p
	}
	for i := range 5 {
		add(rec(fmt.Sprintf("r%d", i), time.Duration(i)*time.Minute))
	}
	first := get("")
	var got []string
	for _, r := range first.Records {
		got = append(got, r.MessageID)
	}
	add(rec("late", 30*time.Second)) // recorded now, occurred before the page read
	cursor, resume := first.NextCursor, ""
	for cursor != "" {
		p := get(cursor)
		for _, r := range p.Records {
			got = append(got, r.MessageID)
		}
		cursor, resume = p.NextCursor, p.ResumeCursor
	}
	if want := []string{"r0", "r1", "r2", "r3", "r4", "late"}; !slices.Equal(got, want) {
		t.Errorf("following next_cursor: %v, want %v", got, want)
	}
	add(rec("later", -time.Hour))
	p := get(resume)
	if len(p.Records) != 1 || p.Records[0].MessageID != "later" || p.ResumeCursor == "" {
		t.Errorf("asked again with resume_cursor: %+v, want the record recorded since", p)
	}
	if again := get(p.ResumeCursor); len(again.Records) != 0 {
		t.Errorf("asked again with nothing recorded since: %d records", len(again.Records))
	}
}
