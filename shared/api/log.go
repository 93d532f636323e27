package api

import (
	"encoding/json"
	"net/http"

	"github.com/usekarma/karma/shared/audit"
)

// GET /log?component=&deployment=&correlation=&actor=&since=&until=&limit=&cursor= — the audit
// log, the questions `karma audit log` asks: every set filter must match; since/until are RFC
// 3339 times of occurrence (since inclusive, until exclusive). Records come a page at a time
// (limit, default 100, at most 1000; audit.Page): first those recorded when the first page was
// asked, in the log's order (occurred_at, chain, seq), then those recorded since, in the order
// they were recorded — so a record recorded late, with an occurred_at before those already read,
// is not skipped. next_cursor (and a Link header, rel="next") continues after the last record
// while more are there; on the last page resume_cursor, asked later, gives what was recorded
// since. Each record carries the message (or API entry) as received, in body, secrets redacted
// (RedactBody).

// LogDefaultLimit is the page size of GET /log without ?limit=.
const LogDefaultLimit = 100

// LogPage is a page of GET /log.
type LogPage struct {
	Records    []LogRecord `json:"records"`
	NextCursor string      `json:"next_cursor,omitempty"`
	// ResumeCursor is set on the last page: the same question asked later with it as cursor
	// answers the records recorded since (however early they occurred), and only those.
	ResumeCursor string `json:"resume_cursor,omitempty"`
}

// LogRecord is an audit.Record with its body as JSON, secrets redacted (RedactBody).
type LogRecord struct {
	audit.Record
	Body json.RawMessage `json:"body"`
}

func (s *server) getLog(w http.ResponseWriter, r *http.Request, _ Caller) error {
	q := &query{r: r}
	aq := audit.Query{Component: q.str("component"), DeploymentID: q.str("deployment"), Correlation: q.str("correlation"), Actor: q.str("actor"),
		Since: q.time("since"), Until: q.time("until")}
	limit := q.int("limit", LogDefaultLimit, 1, 1000)
	var from *audit.Cursor
	if c := q.str("cursor"); c != "" {
		cur, err := audit.ParseCursor(c)
		if err != nil {
			q.fail("cursor", "not a cursor of GET /log: pass next_cursor as it was given")
		}
		from = &cur
	}
	if !aq.Until.IsZero() && !aq.Since.Before(aq.Until) && !aq.Since.IsZero() {
		q.fail("until", "until must be after since")
	}
	if err := q.err(); err != nil {
		return err
	}
	recs, next, more, err := audit.Page(r.Context(), s.cfg.Audit, aq, from, limit)
	if err != nil {
		return err
	}
	page := LogPage{Records: make([]LogRecord, len(recs))}
	for i, rec := range recs {
		page.Records[i] = LogRecord{Record: rec, Body: RedactBody(rec.Body)}
	}
	if !more {
		page.ResumeCursor = next.String()
	} else {
		page.NextCursor = next.String()
		u := *r.URL
		v := u.Query()
		v.Set("cursor", page.NextCursor)
		u.RawQuery = v.Encode()
		w.Header().Set("Link", "<"+u.RequestURI()+`>; rel="next"`)
	}
	return writeJSON(w, http.StatusOK, page)
}
