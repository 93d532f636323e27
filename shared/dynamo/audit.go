// Package dynamo is Karma's production state on Amazon DynamoDB: the audit log (AuditLog,
// audit.Log), change set state (ChangeSets, changeset.Store) and the stages' idempotency
// records (Seen, pipeline.Seen). Each passes the conformance suite its embedded (SQLite)
// counterpart passes: audittest, changesettest and seentest.
//
// Tables are defined in Go (Definitions, CreateTables) so that tests create exactly what the
// Terraform module creates. Errors are *Error values naming the operation and the table;
// throttling, 5xx, connection errors and timeouts are additionally marked transient
// (pipeline.IsTransient), condition check failures are results, not errors, and oversized
// items fail with a permanent *TooLargeError before anything is written.
//
// The audit table's key schema, and which Query answers which auditor question, is described
// on AuditLog and in docs/audit.md.
package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/audit"
)

// Attribute names. The audit record attributes carry the audit.Record field of the same JSON
// name; empty strings are not stored (the GSIs on them are sparse).
const (
	attrPK          = "pk"
	attrSK          = "sk"
	attrMessageID   = "message_id"
	attrType        = "type"
	attrVersion     = "version"
	attrEnv         = "env"
	attrChain       = "chain"
	attrSeq         = "seq"
	attrComponent   = "component"
	attrDeployment  = "deployment_id"
	attrCorrelation = "correlation_id"
	attrCausation   = "causation_id"
	attrActorKind   = "actor_kind"
	attrActor       = "actor"
	attrOccurredAt  = "occurred_at"
	attrDayShard    = "day_shard"
	attrBody        = "body"
	attrPrevHash    = "prev_hash"
	attrHash        = "hash"
)

// Index names of the audit table: one per auditor question.
const (
	IndexDeployment  = "by-deployment"  // (a) everything about one deployment
	IndexComponent   = "by-component"   // (b) one component's history
	IndexCorrelation = "by-correlation" // (c) everything one root cause caused
	IndexActor       = "by-actor"       // (d) everything one actor did
	IndexDay         = "by-day"         // (e) a time range: one partition per UTC day and shard
)

// Key prefixes of the audit table's items.
const (
	chainPrefix = "CHAIN#" // pk of a chain's records and its head
	seqPrefix   = "SEQ#"   // sk of a record: SEQ#<seq, 20 digits>
	headSK      = "HEAD"   // sk of a chain's head
	msgPrefix   = "MSG#"   // pk of a message id marker (sk "MSG")
	msgSK       = "MSG"
	chainsPK    = "CHAINS" // pk of the chain directory (sk: chain name)
	daysPK      = "DAYS"   // pk of the day directory (sk: YYYY-MM-DD)
)

// DayShards is how many partitions of the by-day index one UTC day is spread over (day_shard
// "2026-11-22#0" .. "#3", chosen by a hash of the message id). Every record is written to the
// by-day index, so one unsharded day partition would take the whole write rate of the log;
// DynamoDB allows about 1,000 write units per second per partition, and with ALL projected a
// 2 KB record costs 2 units there. Four shards lift that ceiling to ~4,000 units a second. It
// is part of the key schema: readers query every shard of a day.
const DayShards = 4

// tsLayout formats occurred_at: fixed width, UTC, nanoseconds, so that string order is time
// order (years 0001 to 9999).
const tsLayout = "2006-01-02T15:04:05.000000000Z"

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
)

// Transaction limits: TransactWriteItems takes at most 100 actions and 4 MB. A record takes two
// actions (the record, its message id marker), a batch two more (the chain head, the chain
// directory entry when the chain is new).
const (
	maxTxActions = 100
	maxTxBytes   = 4_000_000
	// Key attribute limits: 2048 bytes for a partition key, 1024 for a sort key.
	maxPartitionKey = 2048
	maxSortKey      = 1024
)

// AuditOptions tune an AuditLog; zero values take the defaults.
type AuditOptions struct {
	// Concurrency is how many transactions one Append runs in parallel (default 16).
	Concurrency int
	// MaxAttempts bounds the retries of one batch of one chain after a conflict with another
	// appender (default 10); then Append fails with a transient *ConflictError.
	MaxAttempts int
	// MaxTransactActions caps the actions of one TransactWriteItems (default and maximum 100).
	MaxTransactActions int
}

// AuditLog is audit.Log on one DynamoDB table. Safe for concurrent use, also by several
// processes appending to the same chains.
//
// Key schema (every item has pk and sk, strings):
//
//	record         pk CHAIN#<chain>     sk SEQ#<seq, 20 digits>   the record's fields as attributes
//	chain head     pk CHAIN#<chain>     sk HEAD                   seq, hash of the chain's last record
//	message id     pk MSG#<message id>  sk MSG                    chain, seq: makes Append idempotent
//	chain entry    pk CHAINS            sk <chain>                one per chain: Chains
//	day entry      pk DAYS              sk <YYYY-MM-DD>           one per UTC day with records
//
// Record attributes: message_id, type, version (N), env, chain, seq (N), component,
// deployment_id, correlation_id, causation_id, actor_kind, actor, occurred_at (fixed-width
// UTC, nanoseconds: "2025-03-14T15:09:26.535000000Z"), day_shard ("2025-03-14#2"), body (the
// envelope's JSON as a string; binary if it is not UTF-8), prev_hash, hash. Empty strings
// are omitted.
//
// Global secondary indexes, all sorted by occurred_at and projecting ALL attributes, so that
// each auditor question is one Query per 1 MB page and needs no further reads:
//
//	by-deployment   deployment_id    (a) everything about one deployment
//	by-component    component        (b) one component's history over time
//	by-correlation  correlation_id   (c) everything one root cause caused
//	by-actor        actor            (d) everything one actor did
//	by-day          day_shard        (e) a time range: DayShards Queries per day in the range
//
// Query picks the first of deployment, correlation, component and actor that is set as the
// index, filters on the others server side (FilterExpression) and bounds occurred_at in the
// key condition. With none set it queries by-day, DayShards Queries per day; unless the range
// lies within two UTC days, the day directory (one more Query) first says which days have
// records.
//
// Append: records are grouped by chain and written in argument order by TransactWriteItems
// (at most 100 actions, 4 MB), each putting the records (condition: the seq slot is free),
// their message id markers (condition attribute_not_exists: the first writer of an id wins)
// and each chain's head (condition: seq unchanged since read; attribute_not_exists for a new
// chain, whose directory entry is put too). A record is two actions, so one chain gets up to 49
// records per transaction; the small batches of several chains share a transaction (a batch
// of ten messages on five chains is one request), and transactions of different chains run in
// parallel. Two appenders of one chain cannot fork it: the loser's transaction is cancelled,
// it re-reads the heads and message ids (one BatchGetItem), drops the messages that exist
// now, and retries, at most MaxAttempts times for a chain that keeps losing. Heads are read
// once per chain and process (one BatchGetItem per 100 chains) and then kept as hints that a
// failed condition corrects. Append is atomic per transaction, not per call: when it fails,
// the records of the transactions that succeeded stay (and are counted); calling it again
// with the same records appends the rest.
//
// Verify queries the chain's records (consistent reads, seq order) and checks each record as
// the embedded log does, then checks the head: a record missing at the end, which the chain
// alone cannot show, is reported when the head names a later seq or another hash.
type AuditLog struct {
	client API
	table  string
	opts   AuditOptions

	days sync.Map // UTC days already entered in the day directory by this process

	mu    sync.Mutex
	heads map[string]head // chain -> the last head this process wrote or read: a hint
}

// maxHints bounds the head hints kept; past it they are dropped and re-read when needed.
const maxHints = 10_000

func (l *AuditLog) hint(chain string) (head, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.heads[chain]
	return h, ok
}

func (l *AuditLog) setHint(chain string, h head, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ok {
		delete(l.heads, chain)
		return
	}
	if len(l.heads) >= maxHints {
		clear(l.heads)
	}
	l.heads[chain] = h
}

var _ audit.Log = (*AuditLog)(nil)

// NewAuditLog returns the audit log on table (created by CreateTables or Terraform).
func NewAuditLog(client API, table string, opts AuditOptions) *AuditLog {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	if opts.MaxTransactActions <= 0 || opts.MaxTransactActions > maxTxActions {
		opts.MaxTransactActions = maxTxActions
	}
	return &AuditLog{client: client, table: table, opts: opts, heads: map[string]head{}}
}

// head is a chain's last seq and hash (0, "" for an empty chain).
type head struct {
	seq    int64
	hash   string
	exists bool // the HEAD item was read (Verify tells a missing head from an empty chain)
}

// pending is a validated record waiting to be appended.
type pending struct {
	rec  audit.Record
	size int // estimated item size without seq, prev_hash and hash
}

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
		p := pending{rec: r, size: itemSize(recordItem(r)) + 2*64 + 30}
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

// pack groups the next records of active chains into transactions within the limits: a chain
// gets as many records as fit in a transaction of its own; chains whose batch fits in the
// transaction being filled join it.
func (l *AuditLog) pack(active []*chainWork) [][]segment {
	var txs [][]segment
	var cur []segment
	actions, bytes := 0, 0
	for _, w := range active {
		n, a, b := l.batchLen(w, l.opts.MaxTransactActions, maxTxBytes)
		if len(cur) > 0 && (actions+a > l.opts.MaxTransactActions || bytes+b > maxTxBytes) {
			txs = append(txs, cur)
			cur, actions, bytes = nil, 0, 0
		}
		cur = append(cur, segment{w: w, n: n})
		actions, bytes = actions+a, bytes+b
	}
	if len(cur) > 0 {
		txs = append(txs, cur)
	}
	return txs
}

// batchLen is how many of w's records fit in maxActions and maxBytes (at least one), and the
// actions and bytes they take with the chain's head (and directory entry, for a new chain).
func (l *AuditLog) batchLen(w *chainWork, maxActions, maxBytes int) (n, actions, bytes int) {
	actions, bytes = 1, 200 // the head
	if w.h.seq == 0 {
		actions, bytes = 2, 300 // and the chain directory entry
	}
	for _, p := range w.recs {
		a, b := 2, p.size+len(p.rec.MessageID)+len(p.rec.Chain)+100
		if n > 0 && (actions+a > maxActions || bytes+b > maxBytes) {
			break
		}
		actions, bytes, n = actions+a, bytes+b, n+1
	}
	return n, actions, bytes
}

// txFor builds the transaction writing segs; written[i] is the head segs[i] leaves its chain at.
func (l *AuditLog) txFor(segs []segment) (*dynamodb.TransactWriteItemsInput, []head) {
	var items []types.TransactWriteItem
	written := make([]head, len(segs))
	for i, sg := range segs {
		var its []types.TransactWriteItem
		its, written[i] = l.chainItems(sg.w.chain, sg.w.h, sg.w.recs[:sg.n])
		items = append(items, its...)
	}
	return &dynamodb.TransactWriteItemsInput{TransactItems: items}, written
}

// chainItems are the transaction actions appending batch to chain after h, and the new head.
func (l *AuditLog) chainItems(chain string, h head, batch []pending) ([]types.TransactWriteItem, head) {
	table := aws.String(l.table)
	pk := str(chainPrefix + chain)
	var items []types.TransactWriteItem
	prev := h
	for _, p := range batch {
		r := p.rec
		r.Seq, r.PrevHash = prev.seq+1, prev.hash
		r.Hash = r.ComputeHash(r.PrevHash)
		items = append(items,
			types.TransactWriteItem{Put: &types.Put{TableName: table, Item: recordItem(r),
				ConditionExpression: aws.String("attribute_not_exists(pk)")}},
			types.TransactWriteItem{Put: &types.Put{TableName: table,
				Item: map[string]types.AttributeValue{attrPK: str(msgPrefix + r.MessageID), attrSK: str(msgSK),
					attrChain: str(chain), attrSeq: num(r.Seq)},
				ConditionExpression: aws.String("attribute_not_exists(pk)")}})
		prev = head{seq: r.Seq, hash: r.Hash, exists: true}
	}
	headPut := &types.Put{TableName: table,
		Item: map[string]types.AttributeValue{attrPK: pk, attrSK: str(headSK), attrSeq: num(prev.seq), attrHash: str(prev.hash)}}
	if h.seq == 0 {
		headPut.ConditionExpression = aws.String("attribute_not_exists(pk)")
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: table,
			Item: map[string]types.AttributeValue{attrPK: str(chainsPK), attrSK: str(chain)}}})
	} else {
		headPut.ConditionExpression = aws.String("#seq = :prev")
		headPut.ExpressionAttributeNames = map[string]string{"#seq": attrSeq}
		headPut.ExpressionAttributeValues = map[string]types.AttributeValue{":prev": num(h.seq)}
	}
	return append(items, types.TransactWriteItem{Put: headPut}), prev
}

// readHeads sets each work's head from this process's hint, or reads the heads it has no hint
// of: one consistent BatchGetItem per 100 chains.
func (l *AuditLog) readHeads(ctx context.Context, works []*chainWork) error {
	var unknown []*chainWork
	for _, w := range works {
		if h, ok := l.hint(w.chain); ok {
			w.h = h
		} else {
			unknown = append(unknown, w)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	keys := make([]map[string]types.AttributeValue, len(unknown))
	for i, w := range unknown {
		keys[i] = map[string]types.AttributeValue{attrPK: str(chainPrefix + w.chain), attrSK: str(headSK)}
	}
	items, err := batchGet(ctx, l.client, l.table, keys)
	if err != nil {
		return wrap("audit append: read chain heads", l.table, "", err)
	}
	heads := map[string]head{}
	for _, it := range items {
		pk, _ := getStr(it, attrPK)
		h, err := headFromItem(it)
		if err != nil {
			return fmt.Errorf("dynamo: audit append: %s: unreadable HEAD item: %w", pk, err)
		}
		heads[strings.TrimPrefix(pk, chainPrefix)] = h
	}
	for _, w := range unknown {
		w.h = heads[w.chain] // zero for a new chain
	}
	return nil
}

// refresh re-reads the heads of chains whose transaction was cancelled and drops their
// records whose message ids exist now (one consistent BatchGetItem per 100 keys). A chain
// whose head moved or whose messages appeared lost a race: its attempts count. When nothing
// changed for any of them (a conflict with a transaction still in flight), all count.
func (l *AuditLog) refresh(ctx context.Context, works []*chainWork) error {
	var keys []map[string]types.AttributeValue
	for _, w := range works {
		keys = append(keys, map[string]types.AttributeValue{attrPK: str(chainPrefix + w.chain), attrSK: str(headSK)})
		for _, p := range w.recs {
			keys = append(keys, map[string]types.AttributeValue{attrPK: str(msgPrefix + p.rec.MessageID), attrSK: str(msgSK)})
		}
	}
	items, err := batchGet(ctx, l.client, l.table, keys, attrPK, attrSK, attrSeq, attrHash)
	if err != nil {
		return wrap("audit append: re-read chains", l.table, "", err)
	}
	heads, exist := map[string]head{}, map[string]bool{}
	for _, it := range items {
		pk, _ := getStr(it, attrPK)
		if id, ok := strings.CutPrefix(pk, msgPrefix); ok {
			exist[id] = true
			continue
		}
		h, err := headFromItem(it)
		if err != nil {
			return fmt.Errorf("dynamo: audit append: %s: unreadable HEAD item: %w", pk, err)
		}
		heads[strings.TrimPrefix(pk, chainPrefix)] = h
	}
	var moved []*chainWork
	for _, w := range works {
		n := len(w.recs)
		w.recs = slices.DeleteFunc(w.recs, func(p pending) bool { return exist[p.rec.MessageID] })
		h := heads[w.chain]
		if h.seq != w.h.seq || h.hash != w.h.hash || len(w.recs) != n {
			moved = append(moved, w)
		}
		w.h = h
		l.setHint(w.chain, h, true)
	}
	if len(moved) == 0 {
		moved = works
	}
	for _, w := range moved {
		if w.attempts++; w.attempts >= l.opts.MaxAttempts && len(w.recs) > 0 {
			l.setHint(w.chain, head{}, false)
			w.err = &ConflictError{Op: "audit append", Table: l.table,
				Key: "chain " + w.chain + " (if no other appender is running, its HEAD item may be missing or altered)", Attempts: w.attempts}
		}
	}
	return nil
}

// head reads chain's head: from this process's hint unless fresh is set, else a consistent read.
func (l *AuditLog) head(ctx context.Context, chain string, fresh bool) (head, error) {
	if !fresh {
		if h, ok := l.hint(chain); ok {
			return h, nil
		}
	}
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.table),
		Key:            map[string]types.AttributeValue{attrPK: str(chainPrefix + chain), attrSK: str(headSK)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return head{}, wrap("audit: read chain head", l.table, "chain "+chain, err)
	}
	if out.Item == nil {
		return head{}, nil
	}
	h, err := headFromItem(out.Item)
	if err != nil {
		return head{}, fmt.Errorf("dynamo: audit: chain %s: unreadable HEAD item: %w", chain, err)
	}
	return h, nil
}

func headFromItem(it map[string]types.AttributeValue) (head, error) {
	seq, err1 := getNum(it, attrSeq)
	hash, err2 := getStr(it, attrHash)
	return head{seq: seq, hash: hash, exists: true}, errors.Join(err1, err2)
}

// recordItem is r's item (r has Seq, PrevHash and Hash set, or zero before chaining).
func recordItem(r audit.Record) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{
		attrPK:         str(chainPrefix + r.Chain),
		attrSK:         str(seqKey(r.Seq)),
		attrMessageID:  str(r.MessageID),
		attrVersion:    num(int64(r.Version)),
		attrChain:      str(r.Chain),
		attrSeq:        num(r.Seq),
		attrOccurredAt: str(r.OccurredAt.UTC().Format(tsLayout)),
		attrDayShard:   str(dayShard(r.OccurredAt, r.MessageID)),
	}
	for name, v := range map[string]string{attrType: r.Type, attrEnv: r.Env, attrComponent: r.Component,
		attrDeployment: r.DeploymentID, attrCorrelation: r.CorrelationID, attrCausation: r.CausationID,
		attrActorKind: r.ActorKind, attrActor: r.Actor, attrPrevHash: r.PrevHash, attrHash: r.Hash} {
		if v != "" {
			it[name] = str(v)
		}
	}
	if len(r.Body) > 0 {
		if utf8.Valid(r.Body) {
			it[attrBody] = str(string(r.Body))
		} else {
			it[attrBody] = &types.AttributeValueMemberB{Value: r.Body}
		}
	}
	return it
}

// recordFromItem reads a record item.
func recordFromItem(it map[string]types.AttributeValue) (audit.Record, error) {
	var r audit.Record
	var errs []error
	s := func(name string) string {
		v, err := getOptStr(it, name)
		errs = append(errs, err)
		return v
	}
	r.MessageID, r.Type, r.Env, r.Chain = s(attrMessageID), s(attrType), s(attrEnv), s(attrChain)
	r.Component, r.DeploymentID, r.CorrelationID = s(attrComponent), s(attrDeployment), s(attrCorrelation)
	r.CausationID, r.ActorKind, r.Actor = s(attrCausation), s(attrActorKind), s(attrActor)
	r.PrevHash, r.Hash = s(attrPrevHash), s(attrHash)
	v, err := getNum(it, attrVersion)
	r.Version = int(v)
	errs = append(errs, err)
	r.Seq, err = getNum(it, attrSeq)
	errs = append(errs, err)
	at, err := time.Parse(tsLayout, s(attrOccurredAt))
	r.OccurredAt = at.UTC()
	errs = append(errs, err)
	switch b := it[attrBody].(type) {
	case nil:
	case *types.AttributeValueMemberS:
		r.Body = json.RawMessage(b.Value)
	case *types.AttributeValueMemberB:
		r.Body = json.RawMessage(b.Value)
	default:
		errs = append(errs, fmt.Errorf("attribute %s: unexpected type %T", attrBody, b))
	}
	return r, errors.Join(errs...)
}

func seqKey(seq int64) string { return fmt.Sprintf("%s%020d", seqPrefix, seq) }

// dayShard is the by-day index partition of a record.
func dayShard(at time.Time, messageID string) string {
	h := fnv.New32a()
	h.Write([]byte(messageID))
	return at.UTC().Format(time.DateOnly) + "#" + strconv.Itoa(int(h.Sum32()%DayShards))
}

// Query returns the records matching every set field of q, by OccurredAt, chain, Seq.
func (l *AuditLog) Query(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	lo, hi, ok := timeBounds(q.Since, q.Until)
	if !ok {
		return []audit.Record{}, nil
	}
	fields := []struct{ index, attr, value string }{
		{IndexDeployment, attrDeployment, q.DeploymentID},
		{IndexCorrelation, attrCorrelation, q.Correlation},
		{IndexComponent, attrComponent, q.Component},
		{IndexActor, attrActor, q.Actor},
	}
	key := slices.IndexFunc(fields, func(f struct{ index, attr, value string }) bool { return f.value != "" })
	if key >= 0 {
		var filters []attrValue
		for i, f := range fields {
			if i != key && f.value != "" {
				filters = append(filters, attrValue{f.attr, f.value})
			}
		}
		f := fields[key]
		recs, err := l.collect(ctx, l.indexQuery(f.index, f.attr, f.value, lo, hi, filters), q.Limit, len(filters) > 0)
		if err != nil {
			return nil, err
		}
		return finish(recs, q.Limit), nil
	}
	return l.queryDays(ctx, lo, hi, q.Limit)
}

type attrValue struct{ attr, value string }

// queryDays answers a query by time alone from the by-day index, day by day.
func (l *AuditLog) queryDays(ctx context.Context, lo, hi string, limit int) ([]audit.Record, error) {
	days, err := l.daysBetween(ctx, lo, hi)
	if err != nil {
		return nil, err
	}
	out := []audit.Record{}
	for _, day := range days {
		want := 0
		if limit > 0 {
			want = limit - len(out)
		}
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			recs []audit.Record
			errs []error
		)
		for s := range DayShards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := l.collect(ctx, l.indexQuery(IndexDay, attrDayShard, day+"#"+strconv.Itoa(s), lo, hi, nil), want, false)
				mu.Lock()
				defer mu.Unlock()
				recs = append(recs, r...)
				errs = append(errs, err)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		out = append(out, finish(recs, want)...)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

// daysBetween lists the UTC days to query for [lo, hi] (formatted bounds, "" = open): both
// days of a closed range within one or two UTC days, else the day directory's entries in the
// range (one Query).
func (l *AuditLog) daysBetween(ctx context.Context, lo, hi string) ([]string, error) {
	if lo != "" && hi != "" {
		from, _ := time.Parse(time.DateOnly, lo[:10])
		to, _ := time.Parse(time.DateOnly, hi[:10])
		if to.Sub(from) <= 24*time.Hour {
			var days []string
			for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
				days = append(days, d.Format(time.DateOnly))
			}
			return days, nil
		}
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(daysPK)},
	}
	cond := "#pk = :pk"
	switch {
	case lo != "" && hi != "":
		cond += " AND #sk BETWEEN :lo AND :hi"
	case lo != "":
		cond += " AND #sk >= :lo"
	case hi != "":
		cond += " AND #sk <= :hi"
	}
	if lo != "" || hi != "" {
		in.ExpressionAttributeNames["#sk"] = attrSK
	}
	if lo != "" {
		in.ExpressionAttributeValues[":lo"] = str(lo[:10])
	}
	if hi != "" {
		in.ExpressionAttributeValues[":hi"] = str(hi[:10])
	}
	in.KeyConditionExpression = aws.String(cond)
	var days []string
	err := l.pages(ctx, in, func(items []map[string]types.AttributeValue) (bool, error) {
		for _, it := range items {
			d, err := getStr(it, attrSK)
			if err != nil {
				return false, err
			}
			days = append(days, d)
		}
		return true, nil
	})
	if err != nil {
		return nil, wrap("audit query: list days", l.table, "", err)
	}
	return days, nil
}

// indexQuery is a Query of index for attr = value, occurred_at within [lo, hi], matching filters.
func (l *AuditLog) indexQuery(index, attr, value, lo, hi string, filters []attrValue) *dynamodb.QueryInput {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		IndexName:                 aws.String(index),
		ExpressionAttributeNames:  map[string]string{"#k": attr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": str(value)},
	}
	cond := "#k = :k"
	if lo != "" || hi != "" {
		in.ExpressionAttributeNames["#t"] = attrOccurredAt
	}
	switch {
	case lo != "" && hi != "":
		cond += " AND #t BETWEEN :lo AND :hi"
	case lo != "":
		cond += " AND #t >= :lo"
	case hi != "":
		cond += " AND #t <= :hi"
	}
	if lo != "" {
		in.ExpressionAttributeValues[":lo"] = str(lo)
	}
	if hi != "" {
		in.ExpressionAttributeValues[":hi"] = str(hi)
	}
	in.KeyConditionExpression = aws.String(cond)
	var fs []string
	for i, f := range filters {
		n, v := "#f"+strconv.Itoa(i), ":f"+strconv.Itoa(i)
		in.ExpressionAttributeNames[n] = f.attr
		in.ExpressionAttributeValues[v] = str(f.value)
		fs = append(fs, n+" = "+v)
	}
	if len(fs) > 0 {
		in.FilterExpression = aws.String(strings.Join(fs, " AND "))
	}
	return in
}

// collect runs in page by page. With limit > 0 it stops once it holds limit records and every
// record tied on time with the limit-th (results come in occurred_at order; ties are ordered
// by chain and seq afterwards).
func (l *AuditLog) collect(ctx context.Context, in *dynamodb.QueryInput, limit int, filtered bool) ([]audit.Record, error) {
	if limit > 0 && !filtered {
		in.Limit = aws.Int32(int32(min(limit+1, 1000)))
	}
	var out []audit.Record
	err := l.pages(ctx, in, func(items []map[string]types.AttributeValue) (bool, error) {
		for _, it := range items {
			r, err := recordFromItem(it)
			if err != nil {
				pk, _ := getStr(it, attrPK)
				sk, _ := getStr(it, attrSK)
				return false, fmt.Errorf("unreadable record %s %s: %w", pk, sk, err)
			}
			out = append(out, r)
		}
		return limit <= 0 || len(out) < limit || !out[len(out)-1].OccurredAt.After(out[limit-1].OccurredAt), nil
	})
	if err != nil {
		return nil, wrap("audit query", l.table, "index "+aws.ToString(in.IndexName), err)
	}
	return out, nil
}

// pages runs a Query until the last page or until fn returns false.
func (l *AuditLog) pages(ctx context.Context, in *dynamodb.QueryInput, fn func([]map[string]types.AttributeValue) (bool, error)) error {
	for {
		out, err := l.client.Query(ctx, in)
		if err != nil {
			return err
		}
		more, err := fn(out.Items)
		if err != nil {
			return err
		}
		if !more || len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// finish orders recs by OccurredAt, chain, Seq and applies limit.
func finish(recs []audit.Record, limit int) []audit.Record {
	slices.SortStableFunc(recs, func(a, b audit.Record) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		if c := strings.Compare(a.Chain, b.Chain); c != 0 {
			return c
		}
		return int(a.Seq - b.Seq)
	})
	if limit > 0 && len(recs) > limit {
		recs = recs[:limit]
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	return recs
}

// timeBounds turns the half-open [since, until) into inclusive occurred_at bounds ("" = open);
// ok is false when nothing can match.
func timeBounds(since, until time.Time) (lo, hi string, ok bool) {
	if !since.IsZero() {
		switch s := since.UTC(); {
		case s.After(maxTime):
			return "", "", false
		case s.After(minTime):
			lo = s.Format(tsLayout)
		}
	}
	if !until.IsZero() {
		switch u := until.UTC(); {
		case !u.After(minTime):
			return "", "", false
		case !u.After(maxTime):
			hi = u.Add(-time.Nanosecond).Format(tsLayout)
		}
	}
	if lo != "" && hi != "" && lo > hi {
		return "", "", false
	}
	return lo, hi, true
}

// Verify recomputes chain's hashes in seq order, then checks the chain's head.
func (l *AuditLog) Verify(ctx context.Context, chain string) error {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		KeyConditionExpression:    aws.String("#pk = :pk AND begins_with(#sk, :seq)"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#sk": attrSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(chainPrefix + chain), ":seq": str(seqPrefix)},
		ConsistentRead:            aws.Bool(true),
	}
	tampered := func(seq int64, format string, args ...any) error {
		return fmt.Errorf("dynamo: audit verify: %w: chain %s: seq %d: %s", audit.ErrTampered, chain, seq, fmt.Sprintf(format, args...))
	}
	var prev audit.Record // Seq 0, Hash "": what the first record must follow
	var bad error
	err := l.pages(ctx, in, func(items []map[string]types.AttributeValue) (bool, error) {
		for _, it := range items {
			sk, _ := getStr(it, attrSK)
			pos, err := strconv.ParseInt(strings.TrimPrefix(sk, seqPrefix), 10, 64)
			if err != nil {
				bad = tampered(prev.Seq+1, "unexpected item %q in the chain", sk)
				return false, nil
			}
			r, err := recordFromItem(it)
			switch {
			case pos != prev.Seq+1:
				bad = tampered(prev.Seq+1, "missing")
			case err != nil:
				bad = tampered(pos, "unreadable: %v", err)
			case r.Seq != pos || r.Chain != chain:
				bad = tampered(pos, "seq or chain attribute does not match the item's key")
			case r.PrevHash != prev.Hash:
				bad = tampered(pos, "prev_hash is not the previous record's hash")
			case r.Hash != r.ComputeHash(prev.Hash):
				bad = tampered(pos, "hash does not match the record's content")
			}
			if bad != nil {
				return false, nil
			}
			prev = r
		}
		return true, nil
	})
	if err != nil {
		return wrap("audit verify", l.table, "chain "+chain, err)
	}
	if bad != nil {
		return bad
	}
	h, err := l.head(ctx, chain, true)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return err
		}
		return tampered(prev.Seq+1, "%v", err)
	}
	switch {
	case !h.exists && prev.Seq > 0:
		return tampered(prev.Seq, "the chain's HEAD item is missing")
	case h.seq > prev.Seq:
		return tampered(prev.Seq+1, "missing (the chain's head says the last record is seq %d)", h.seq)
	case h.seq < prev.Seq:
		return tampered(h.seq+1, "beyond the chain's head (seq %d)", h.seq)
	case h.hash != prev.Hash:
		return tampered(prev.Seq, "hash differs from the one in the chain's head")
	}
	return nil
}

// Chains lists every chain name, sorted: one Query of the chain directory per page.
func (l *AuditLog) Chains(ctx context.Context) ([]string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(chainsPK)},
	}
	out := []string{}
	err := l.pages(ctx, in, func(items []map[string]types.AttributeValue) (bool, error) {
		for _, it := range items {
			c, err := getStr(it, attrSK)
			if err != nil {
				return false, err
			}
			out = append(out, c)
		}
		return true, nil
	})
	if err != nil {
		return nil, wrap("audit chains", l.table, "", err)
	}
	slices.Sort(out) // DynamoDB orders by UTF-8 bytes, as Go does; sorting again costs nothing
	return out, nil
}

// sleep backs off before the attempt-th retry: full jitter up to 2^attempt ms, at most 200 ms.
func sleep(ctx context.Context, attempt int) {
	d := time.Duration(rand.Int64N(int64(min(time.Millisecond<<min(attempt, 8), 200*time.Millisecond)) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
