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

// Paging. Query returns records in one total order — OccurredAt, then chain, then seq — so a
// position in it is a record's (OccurredAt, Chain, Seq): a Cursor. Page reads the records after
// a cursor with Query itself (Since = the cursor's time, then leaves out what is not after it),
// so every Log pages the same way and a page is stable while records are appended: records
// arrive with their own OccurredAt, and one appended before the cursor is simply not seen by
// the next pages.

// Cursor is the position of a record in Query's order.
type Cursor struct {
	At    time.Time
	Chain string
	Seq   int64
}

// ErrBadCursor is returned (wrapped) by ParseCursor for a cursor it did not make.
var ErrBadCursor = errors.New("audit: not a cursor of this log")

// CursorOf is the position of r.
func CursorOf(r Record) Cursor { return Cursor{At: r.OccurredAt, Chain: r.Chain, Seq: r.Seq} }

// String encodes the cursor opaquely (URL-safe).
func (c Cursor) String() string {
	raw := c.At.UTC().Format(time.RFC3339Nano) + "\n" + strconv.FormatInt(c.Seq, 10) + "\n" + c.Chain
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseCursor decodes Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	parts := strings.SplitN(string(raw), "\n", 3)
	if err != nil || len(parts) != 3 {
		return Cursor{}, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	at, err1 := time.Parse(time.RFC3339Nano, parts[0])
	seq, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return Cursor{}, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	return Cursor{At: at, Chain: parts[2], Seq: seq}, nil
}

// after reports whether r comes after c in Query's order.
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
}

// Page returns at most limit records of q (q.Limit is ignored) that come after from (nil: from
// the first), and the cursor of the next page (nil when there is none).
func Page(ctx context.Context, log Querier, q Query, from *Cursor, limit int) ([]Record, *Cursor, error) {
	if limit <= 0 {
		return nil, nil, fmt.Errorf("audit: page limit %d: want at least 1", limit)
	}
	if from != nil && from.At.After(q.Since) {
		q.Since = from.At
	}
	// Records at the cursor's time that are not after it come back first: ask for more until
	// limit+1 remain (the extra one says there is a next page) or the log has no more.
	for fetch := limit + 1; ; fetch *= 4 {
		q.Limit = fetch
		recs, err := log.Query(ctx, q)
		if err != nil {
			return nil, nil, err
		}
		kept := recs[:0]
		for _, r := range recs {
			if from == nil || from.after(r) {
				kept = append(kept, r)
			}
		}
		switch {
		case len(kept) > limit:
			next := CursorOf(kept[limit-1])
			return kept[:limit], &next, nil
		case len(recs) < fetch:
			return kept, nil, nil
		}
	}
}
