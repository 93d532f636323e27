package dynamo

// The audit table's items: attribute names, key prefixes, limits, and a record's item.

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
	"unicode/utf8"

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
	attrAppended    = "appended"     // N: the appender's clock at the transaction, unix nanoseconds
	attrAppendShard = "append_shard" // "0".."3": the by-appended partition (appendShard)
)

// Index names of the audit table: one per auditor question.
const (
	IndexDeployment  = "by-deployment"  // (a) everything about one deployment
	IndexComponent   = "by-component"   // (b) one component's history
	IndexCorrelation = "by-correlation" // (c) everything one root cause caused
	IndexActor       = "by-actor"       // (d) everything one actor did
	IndexDay         = "by-day"         // (e) a time range: one partition per UTC day and shard
	// IndexAppended lists records in append order (DayShards partitions, each sorted by
	// appended): what audit.Page reads, after a question's first page, to catch up with records
	// appended late.
	IndexAppended = "by-appended"
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
	if r.Appended != 0 {
		it[attrAppended] = num(r.Appended)
		it[attrAppendShard] = str(appendShard(r.MessageID))
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
	if _, ok := it[attrAppended]; ok { // absent on records appended before it was kept
		r.Appended, err = getNum(it, attrAppended)
		errs = append(errs, err)
	}
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

// appendShard is the by-appended index partition of a record: one of DayShards, by a hash of its
// message id. Records are appended now, never to a past day, so the by-day index takes today's
// whole write rate on DayShards partitions too: as many do for by-appended, without days.
func appendShard(messageID string) string {
	h := fnv.New32a()
	h.Write([]byte(messageID))
	return strconv.Itoa(int(h.Sum32() % DayShards))
}

// dayShard is the by-day index partition of a record.
func dayShard(at time.Time, messageID string) string {
	h := fnv.New32a()
	h.Write([]byte(messageID))
	return at.UTC().Format(time.DateOnly) + "#" + strconv.Itoa(int(h.Sum32()%DayShards))
}
