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
	"sync"
	"time"

	"github.com/usekarma/karma/shared/audit"
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
	// AppendSettle is how far behind the clock Horizon stays (default DefaultAppendSettle): it
	// must cover the appenders' clock skew, a transaction's time from its stamp to its commit
	// and the by-appended index's lag, or a reader catching up could pass a record before it
	// shows. Records appended within it are read by the pages after.
	AppendSettle time.Duration
	// Now is the clock (default time.Now): Append stamps records with it, Horizon reads it.
	Now func() time.Time
}

// DefaultAppendSettle is AuditOptions.AppendSettle by default.
const DefaultAppendSettle = 10 * time.Second

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
// UTC, nanoseconds: "2025-03-14T15:09:26.535000000Z"), day_shard ("2025-03-14#2"), appended
// and append_shard (not on records appended before they were kept), body (the
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
// and one sorted by appended (N: the appender's clock when it built the record's transaction,
// unix nanoseconds), for audit.Page's catching up with records appended late (QueryAppended,
// one Query per shard; Horizon is the clock less AppendSettle):
//
//	by-appended     append_shard     "0".."3", by a hash of the message id
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
// Verify queries the chain's records (consistent reads, seq order) and runs audit.ChainCheck
// over them and the chain's HEAD item, as the embedded log does: a record missing at the end,
// which the links alone cannot show, is reported when the head names a later seq or another
// hash. Heads lists the chain directory and reads the HEAD items (one BatchGetItem per 100
// chains): what audit.TakeCheckpoint digests. RecordAt is one consistent GetItem.
type AuditLog struct {
	client API
	table  string
	opts   AuditOptions

	days sync.Map // UTC days already entered in the day directory by this process

	mu    sync.Mutex
	heads map[string]head // chain -> the last head this process wrote or read: a hint
}

func (l *AuditLog) now() time.Time { return l.opts.Now() }

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
	if opts.AppendSettle <= 0 {
		opts.AppendSettle = DefaultAppendSettle
	}
	if opts.Now == nil {
		opts.Now = time.Now
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
