package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Paging. Records arrive late: a message is recorded when the audit stage receives it, with the
// time its producer stamped (a retry, a redelivery from a dead-letter queue, a skewed clock), so
// a record can be appended after records that occurred later, already read. Paging by
// occurrence time alone would never show it to a reader already past its time. So Page reads in
// two parts:
//
//  1. The records of the question as they were at the first page — appended up to the log's
//     Horizon then (Query.AppendedUpTo) — in Query's order (OccurredAt, chain, seq): a position
//     in it is a record's (OccurredAt, Chain, Seq); the next page asks from that record's
//     OccurredAt on and leaves out what is not after it.
//  2. Then, catching up, the records appended after that horizon, in append order (Appended,
//     chain, seq: QueryAppended), up to the log's Horizon at each page. Whatever is appended
//     later comes after the last position read, so a reader following the cursors, or one
//     coming back later with the last one, reads every record once.

// Cursor is a position in Page's reading of a question.
type Cursor struct {
	// CatchUp is false while reading by occurrence (part 1), true while catching up (part 2).
	CatchUp bool
	// Horizon is the log's Horizon at the first page (part 1).
	Horizon int64
	// The last record read: At, Chain, Seq in part 1; Appended, Chain, Seq in part 2 (Through:
	// every record appended up to Appended).
	At       time.Time
	Appended int64
	Chain    string
	Seq      int64
	Through  bool
}

// ErrBadCursor is returned (wrapped) by ParseCursor for a cursor it did not make.
var ErrBadCursor = errors.New("audit: not a cursor of this log")

// cursorVersion starts a cursor's text; cursors of the paging by occurrence alone had none.
const cursorVersion = "c2"

// String encodes the cursor opaquely (URL-safe).
func (c Cursor) String() string {
	raw := strings.Join([]string{cursorVersion, flag(c.CatchUp), strconv.FormatInt(c.Horizon, 10), c.At.UTC().Format(time.RFC3339Nano),
		strconv.FormatInt(c.Appended, 10), strconv.FormatInt(c.Seq, 10), flag(c.Through), c.Chain}, "\n")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// ParseCursor decodes Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	bad := fmt.Errorf("%w: %q", ErrBadCursor, s)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	parts := strings.SplitN(string(raw), "\n", 8)
	if err != nil || len(parts) != 8 || parts[0] != cursorVersion {
		return Cursor{}, bad
	}
	c := Cursor{CatchUp: parts[1] == "1", Through: parts[6] == "1", Chain: parts[7]}
	var errs [4]error
	c.Horizon, errs[0] = strconv.ParseInt(parts[2], 10, 64)
	c.At, errs[1] = time.Parse(time.RFC3339Nano, parts[3])
	c.Appended, errs[2] = strconv.ParseInt(parts[4], 10, 64)
	c.Seq, errs[3] = strconv.ParseInt(parts[5], 10, 64)
	if errors.Join(errs[:]...) != nil || (parts[1] != "0" && parts[1] != "1") || (parts[6] != "0" && parts[6] != "1") {
		return Cursor{}, bad
	}
	return c, nil
}

// CursorOf is the position of r while reading by occurrence up to horizon (part 1).
func CursorOf(r Record, horizon int64) Cursor {
	return Cursor{Horizon: horizon, At: r.OccurredAt, Chain: r.Chain, Seq: r.Seq}
}

// after reports whether r comes after c in Query's order (part 1).
func (c Cursor) after(r Record) bool {
	switch {
	case !r.OccurredAt.Equal(c.At):
		return r.OccurredAt.After(c.At)
	case r.Chain != c.Chain:
		return r.Chain > c.Chain
	}
	return r.Seq > c.Seq
}

// Querier is the part of Log that Page reads with.
type Querier interface {
	Query(ctx context.Context, q Query) ([]Record, error)
	AppendOrder
}

// Page returns at most limit records of q (q.Limit and q.AppendedUpTo are ignored) that come
// after from (nil: from the first), the cursor after the last of them, and whether more
// records are there now. The cursor is good later too: asked again with it, Page returns what
// has been appended since.
func Page(ctx context.Context, log Querier, q Query, from *Cursor, limit int) ([]Record, Cursor, bool, error) {
	if limit <= 0 {
		return nil, Cursor{}, false, fmt.Errorf("audit: page limit %d: want at least 1", limit)
	}
	var cur Cursor
	if from != nil {
		cur = *from
	} else {
		h, err := log.Horizon(ctx)
		if err != nil {
			return nil, Cursor{}, false, err
		}
		cur = Cursor{Horizon: h}
	}
	var out []Record
	if !cur.CatchUp && cur.Horizon != 0 { // (0: nothing was appended at the first page)
		recs, err := byOccurrence(ctx, log, q, from, cur.Horizon, limit)
		if err != nil {
			return nil, Cursor{}, false, err
		}
		if len(recs) > limit {
			return recs[:limit], CursorOf(recs[limit-1], cur.Horizon), true, nil
		}
		out = recs
		// Everything appended up to the horizon is read: catch up from there.
		cur = Cursor{CatchUp: true, Appended: cur.Horizon, Through: true}
	}
	upTo, err := log.Horizon(ctx)
	if err != nil {
		return nil, Cursor{}, false, err
	}
	upTo = max(upTo, cur.Appended) // a clock set back reads nothing new rather than going back
	want := limit - len(out)
	cq := q
	cq.Limit, cq.AppendedUpTo = want+1, 0
	recs, err := log.QueryAppended(ctx, cq, AppendPos{Appended: cur.Appended, Chain: cur.Chain, Seq: cur.Seq, Through: cur.Through}, upTo)
	if err != nil {
		return nil, Cursor{}, false, err
	}
	more := len(recs) > want
	if more {
		recs = recs[:want]
	}
	if len(recs) > 0 {
		last := recs[len(recs)-1]
		cur = Cursor{CatchUp: true, Appended: last.Appended, Chain: last.Chain, Seq: last.Seq}
	}
	if out = append(out, recs...); out == nil {
		out = []Record{}
	}
	return out, cur, more, nil
}

// byOccurrence returns up to limit+1 records of q appended up to horizon, in Query's order,
// after from (nil: from the first).
func byOccurrence(ctx context.Context, log Querier, q Query, from *Cursor, horizon int64, limit int) ([]Record, error) {
	q.AppendedUpTo = horizon
	if from != nil && from.At.After(q.Since) {
		q.Since = from.At
	}
	// Records at the cursor's time that are not after it come back first: ask for more until
	// limit+1 remain (the extra one says there is a next page) or the log has no more.
	for fetch := limit + 1; ; fetch *= 4 {
		q.Limit = fetch
		recs, err := log.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		kept := recs[:0]
		for _, r := range recs {
			if from == nil || from.after(r) {
				kept = append(kept, r)
			}
		}
		if len(kept) > limit || len(recs) < fetch {
			return kept, nil
		}
	}
}
