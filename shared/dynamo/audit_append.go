package dynamo

// Appending to the audit log: validation, the day directory, and chains written in transactions
// conditional on their heads.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/audit"
)

// Append adds the records not yet present (by MessageID), chaining each within its chain.
func (l *AuditLog) Append(ctx context.Context, recs ...audit.Record) (int, error) {
	var chains []string
	byChain := map[string][]pending{}
	seen := map[string]bool{}
	for i, r := range recs {
		r, err := l.normalise(r)
		if err != nil {
			return 0, &ValidationError{Op: fmt.Sprintf("audit append: record %d (%q)", i, r.MessageID), Msg: err.Error()}
		}
		if seen[r.MessageID] {
			continue // a duplicate inside the call: the first wins
		}
		seen[r.MessageID] = true
		r.Appended = 0                                                       // stamped by the transaction (txFor)
		p := pending{rec: r, size: itemSize(recordItem(r)) + 2*64 + 30 + 60} // seq, prev_hash, hash; appended, append_shard
		if p.size > MaxItemSize {
			return 0, &TooLargeError{Table: l.table, Key: chainPrefix + r.Chain + " message " + r.MessageID,
				Size: p.size, Limit: MaxItemSize, What: fmt.Sprintf("audit record with a %d-byte body", len(r.Body))}
		}
		if _, ok := byChain[r.Chain]; !ok {
			chains = append(chains, r.Chain)
		}
		byChain[r.Chain] = append(byChain[r.Chain], p)
	}
	if len(chains) == 0 {
		return 0, nil
	}
	// The day directory first: an entry for a day without records is harmless, a record on a
	// day without an entry would be missing from open-ended time queries.
	if err := l.enterDays(ctx, recs); err != nil {
		return 0, err
	}

	works := make([]*chainWork, len(chains))
	for i, c := range chains {
		works[i] = &chainWork{chain: c, recs: byChain[c]}
	}
	return l.appendWorks(ctx, works)
}

// normalise validates r and brings it to the form it is stored, read back and hashed in.
func (l *AuditLog) normalise(r audit.Record) (audit.Record, error) {
	bad := func(format string, args ...any) (audit.Record, error) {
		return r, fmt.Errorf(format, args...)
	}
	switch {
	case r.MessageID == "":
		return bad("empty MessageID")
	case r.Chain == "":
		return bad("empty Chain")
	case r.OccurredAt.IsZero():
		return bad("OccurredAt not set")
	case r.OccurredAt.Before(minTime) || r.OccurredAt.After(maxTime):
		return bad("OccurredAt %v out of range (years 0001 to 9999)", r.OccurredAt)
	case len(r.Body) > 0 && !json.Valid(r.Body):
		return bad("Body is not valid JSON")
	case len(chainPrefix)+len(r.Chain) > maxPartitionKey || len(r.Chain) > maxSortKey:
		return bad("Chain is longer than %d bytes", maxSortKey)
	case len(msgPrefix)+len(r.MessageID) > maxPartitionKey:
		return bad("MessageID is longer than %d bytes", maxPartitionKey-len(msgPrefix))
	}
	for _, f := range []struct{ name, v string }{{"Component", r.Component}, {"DeploymentID", r.DeploymentID},
		{"CorrelationID", r.CorrelationID}, {"Actor", r.Actor}} {
		if len(f.v) > maxPartitionKey {
			return bad("%s is longer than %d bytes (an index key)", f.name, maxPartitionKey)
		}
	}
	for _, s := range []string{r.MessageID, r.Type, r.Env, r.Chain, r.Component, r.DeploymentID,
		r.CorrelationID, r.CausationID, r.ActorKind, r.Actor} {
		if !utf8.ValidString(s) {
			return bad("field %q is not valid UTF-8", s)
		}
	}
	r.OccurredAt = r.OccurredAt.UTC()
	if len(r.Body) == 0 {
		r.Body = nil // hashed as null, not stored
	}
	r.Seq, r.PrevHash, r.Hash = 0, "", ""
	return r, nil
}

// enterDays puts the day directory entries of recs' days this process has not entered yet.
func (l *AuditLog) enterDays(ctx context.Context, recs []audit.Record) error {
	for _, r := range recs {
		day := r.OccurredAt.UTC().Format(time.DateOnly)
		if _, ok := l.days.Load(day); ok {
			continue
		}
		_, err := l.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(l.table),
			Item:      map[string]types.AttributeValue{attrPK: str(daysPK), attrSK: str(day)},
		})
		if err != nil {
			return wrap("audit append: enter day", l.table, day, err)
		}
		l.days.Store(day, true)
	}
	return nil
}

// chainWork is what remains to append to one chain, and what this call knows of its head.
type chainWork struct {
	chain    string
	recs     []pending
	h        head
	attempts int   // consecutive cancelled transactions this chain was to blame for
	err      error // set when the chain is given up
}

// segment is the part of a chain's records one transaction writes.
type segment struct {
	w *chainWork
	n int
}

// appendWorks appends every chain's records, in rounds: each round packs the chains' next
// records into transactions (small batches of several chains share one transaction; a chain is
// in at most one transaction per round) and runs them in parallel. A cancelled transaction's
// chains are refreshed (head re-read, messages that exist now dropped) and go again next
// round.
func (l *AuditLog) appendWorks(ctx context.Context, works []*chainWork) (int, error) {
	if err := l.readHeads(ctx, works); err != nil {
		return 0, err
	}
	added := 0
	for {
		var active []*chainWork
		for _, w := range works {
			if w.err == nil && len(w.recs) > 0 {
				active = append(active, w)
			}
		}
		if len(active) == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return added, wrap("audit append", l.table, "", err)
		}
		txs := l.pack(active)
		results := make([]error, len(txs))
		var wg sync.WaitGroup
		sem := make(chan struct{}, l.opts.Concurrency)
		for i, segs := range txs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				in, written := l.txFor(segs)
				_, err := l.client.TransactWriteItems(ctx, in)
				if err == nil {
					for j, sg := range segs {
						sg.w.h, sg.w.recs, sg.w.attempts = written[j], sg.w.recs[sg.n:], 0
					}
				}
				results[i] = err
			}()
		}
		wg.Wait()
		var cancelled []*chainWork
		for i, segs := range txs {
			err := results[i]
			var tce *types.TransactionCanceledException
			switch {
			case err == nil:
				for _, sg := range segs {
					added += sg.n
					l.setHint(sg.w.chain, sg.w.h, true)
				}
			case errors.As(err, &tce) && retryableCancel(tce):
				for _, sg := range segs {
					cancelled = append(cancelled, sg.w)
				}
			default:
				for _, sg := range segs {
					l.setHint(sg.w.chain, head{}, false) // the outcome is unknown
					sg.w.err = wrap("audit append", l.table, "chain "+sg.w.chain, err)
				}
			}
		}
		if len(cancelled) > 0 {
			// Another appender moved a head, wrote some of these messages, or held the items
			// in a transaction of its own. Refresh, then retry the chains next round.
			if err := l.refresh(ctx, cancelled); err != nil {
				return added, err
			}
			worst := 0
			for _, w := range cancelled {
				worst = max(worst, w.attempts)
			}
			sleep(ctx, worst+1)
		}
	}
	var errs []error
	for _, w := range works {
		if w.err != nil {
			errs = append(errs, w.err)
		}
	}
	return added, errors.Join(errs...)
}

// retryableCancel reports a transaction cancelled by a race (a failed condition, a conflicting
// transaction) or by throttling, as opposed to an invalid request, which a retry cannot fix.
func retryableCancel(tce *types.TransactionCanceledException) bool {
	for _, r := range tce.CancellationReasons {
		switch aws.ToString(r.Code) {
		case "", "None", "ConditionalCheckFailed", "TransactionConflict", "ThrottlingError",
			"ProvisionedThroughputExceeded", "RequestLimitExceeded":
		default:
			return false
		}
	}
	return true
}
