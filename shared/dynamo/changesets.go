package dynamo

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/changeset"
)

// Change set table attributes.
const (
	attrID        = "id"         // the change set id: the table's partition key
	attrKind      = "kind"       // always "changeset": the by-created index's partition key
	attrCreated   = "created"    // "<created_at, tsLayout>#<id>": the by-created index's sort key
	attrDoc       = "doc"        // the change set as gzip-compressed JSON (binary)
	attrDocBytes  = "doc_bytes"  // the JSON's size before compression (N), for operators
	attrUpdatedAt = "updated_at" // when the item was last written (tsLayout), for operators
	kindChangeSet = "changeset"
)

// IndexCreated is the change set table's index listing change sets by creation time.
const IndexCreated = "by-created"

// ChangeSetOptions tune ChangeSets; zero values take the defaults.
type ChangeSetOptions struct {
	// MaxAttempts bounds Update's optimistic retries when concurrent updates of the same change
	// set keep winning, and Create's and Update's when concurrent writes of the environment's
	// registry of unfinished change sets do (changesets_registry.go) (default 50); then they
	// fail with a transient *ConflictError.
	MaxAttempts int
	// Settle is how long after the records of the unfinished change sets and of those with
	// promotion work were first found complete (changesets_unfinished.go) they are still not
	// answered from alone: until then the answers come from List, which backfills what a
	// function of a version from before them, still running, wrote without its record
	// (default 1 hour; negative: at once).
	Settle time.Duration
}

// ChangeSets is changeset.Store on one DynamoDB table, one item per change set:
//
//	id          S   partition key: the change set id
//	version     N   1 on Create, +1 on every Update: the optimistic lock
//	doc         B   the change set as JSON, gzip-compressed
//	doc_bytes   N   the JSON's size before compression
//	kind        S   "changeset"            } the KEYS_ONLY index by-created (List)
//	created     S   "<created_at>#<id>"    }
//	updated_at  S   time of the last write
//
// Update is a read-modify-write made atomic by a condition: GetItem (consistent), fn, then
// PutItem on condition that version is still the one read; when another Update won meanwhile,
// it starts again from a fresh read, with a jittered backoff, at most MaxAttempts times. fn may
// therefore run more than once, each time on a freshly read change set: it must not depend on
// state it changed in an earlier run (reset captured variables at its start).
//
// Size: a DynamoDB item holds at most 400 KB. The document is compressed (JSON of change sets
// compresses about tenfold), so a change set of a thousand components with their resolved
// configs fits with room to spare; a write that would not fit fails with a permanent
// *TooLargeError naming the sizes, before anything is written.
//
// List is a Query of by-created (newest first) and BatchGetItem of the documents, 100 a
// request; it reads every change set, as the embedded store does. Commits reads the same way
// from the newest backwards, a page at a time, until it has enough (changesets_commits.go).
//
// Beside the change sets the table holds, per environment and component, a pointer to the
// change set that applied it last, written in one transaction with the change set write that
// records the outcome, and a marker saying the pointers are complete (changesets_applied.go):
//
//	id               S   "#applied#<hex SHA-256 of [env, component]>", or "#applied#complete"
//	env, component   S   } a pointer: whose deployment, and the change set (and its
//	applied_cs       S   } created_at, tsLayout) whose node of it applied it last
//	applied_created  S   }
//	complete, gen    BOOL, S   the marker: pointers complete; a new gen, incomplete, put by a
//	                           write that could not hold all its pointers in its transaction
//
// None carries kind, so List (by-created) never sees them; Create refuses ids under "#applied#".
// LastApplied is a BatchGetItem of the marker and the pointer and a GetItem of the change set
// it names; before the marker, it answers from List and backfills the pointers.
//
// And, per change set, what the ordering reads of it while it is unfinished, written in the same
// transaction as the change set whenever that changes, and a marker saying every change set has
// its item (changesets_unfinished.go):
//
//	id               S   "#unfinished#<hex SHA-256 of the change set id>", or "#unfinished#complete"
//	kind, created    S   "unfinished" and "<hex of SHA-256 of env, 128 bits>#<the change set's
//	                     created>", while it is not done: by-created's partition of the
//	                     unfinished change sets, each environment's under a prefix of its own
//	cs, env, created_at, behind, comps   the change set, its queued_behind and its components
//	done             BOOL  the change set is done (the item has no kind then)
//
// and, per environment, a registry naming its unfinished change sets, read consistently where
// the index may lag, Put with a version condition in the transactions that create or finish
// them (changesets_registry.go):
//
//	id               S   "#unfinished#env#<hex SHA-256 of the environment>"
//	env, version, sets   the environment, the optimistic lock, the change set ids (L of S)
//
// List queries the partition "changeset" only, so it never sees them; Create refuses ids under
// "#unfinished#". Unfinished is a Query of the environment's prefix of the partition and a
// BatchGetItem of the items it names (and the marker, and the registry; a second of the items
// the registry names that the index does not show yet); UnfinishedSets, a Query of the partition
// and a BatchGetItem of the change sets; before the marker, both answer from List and backfill.
//
// Likewise, per change set with promotion work (changeset.PromotionWaiting), an item
// "#promoting#<hex SHA-256 of the change set id>" in the by-created partition "promoting"
// (changesets_promoting.go), and its marker "#promoting#complete": Promoting, asked every
// minute by the check for due promotions, is a Query of that partition and a BatchGetItem of
// the change sets it names.
type ChangeSets struct {
	client API
	table  string
	opts   ChangeSetOptions
}

var _ changeset.Store = (*ChangeSets)(nil)

// NewChangeSets returns the change set store on table.
func NewChangeSets(client API, table string, opts ChangeSetOptions) *ChangeSets {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 50
	}
	switch {
	case opts.Settle == 0:
		opts.Settle = time.Hour
	case opts.Settle < 0:
		opts.Settle = 0
	}
	return &ChangeSets{client: client, table: table, opts: opts}
}

// Create stores cs unless a change set with its id exists (then created is false).
func (s *ChangeSets) Create(ctx context.Context, cs *changeset.ChangeSet) (bool, error) {
	return s.create(ctx, cs, nil, false)
}

// CreateAfterLook is Create for a change set ordered by a look at the unfinished change sets of
// its environment, which found looked (changeset.LookedCreator): in the registry read that
// conditions the create's transaction (changesets_registry.go), a change set registered since
// the look that shares a component with cs — created by a resolve of the same environment
// whose create came between — makes it refuse, with changeset.ErrLookedTooEarly, rather than
// start cs beside it. Nothing more is read unless the registry names change sets the look did
// not find.
func (s *ChangeSets) CreateAfterLook(ctx context.Context, cs *changeset.ChangeSet, looked []string) (bool, error) {
	return s.create(ctx, cs, looked, true)
}

var _ changeset.LookedCreator = (*ChangeSets)(nil)

func (s *ChangeSets) create(ctx context.Context, cs *changeset.ChangeSet, looked []string, afterLook bool) (bool, error) {
	if cs == nil || cs.ID == "" {
		return false, &ValidationError{Op: "change set create", Msg: "empty change set id"}
	}
	if len(cs.ID) > maxPartitionKey {
		return false, &ValidationError{Op: "change set create", Msg: fmt.Sprintf("id longer than %d bytes", maxPartitionKey)}
	}
	if reserved(cs.ID) {
		return false, &ValidationError{Op: "change set create", Msg: fmt.Sprintf("id %q: ids starting with %q, %q or %q are reserved (the table's records of the deployments applied last, of the unfinished change sets and of those with promotion work)", cs.ID, appliedPrefix, unfinishedPrefix, promotingPrefix)}
	}
	item, err := s.item(cs, cs.ID, createdKey(cs), 1)
	if err != nil {
		return false, err
	}
	for attempt := 1; ; attempt++ {
		index := s.indexed(cs.ID, cs, nil)
		reg, registered, err := s.registeredIDs(ctx, cs.ID, nil, entryOf(cs))
		if err != nil {
			return false, wrap("change set create", s.table, cs.ID, err)
		}
		if reg != nil {
			index = append(index, reg)
			if afterLook {
				// a change set registered since the look, which cs does not wait for
				if other, err := s.sinceLook(ctx, cs, registered, looked); err != nil {
					return false, wrap("change set create", s.table, cs.ID, err)
				} else if other != "" {
					return false, fmt.Errorf("dynamo: change set %s: %s, of the same environment and sharing a component, was created since: %w", cs.ID, other, changeset.ErrLookedTooEarly)
				}
			}
		}
		err = s.put(ctx, &types.Put{
			TableName:                aws.String(s.table),
			Item:                     item,
			ConditionExpression:      aws.String("attribute_not_exists(#id)"),
			ExpressionAttributeNames: map[string]string{"#id": attrID},
		}, cs, cs.AppliedSince(nil), index)
		switch {
		case errors.Is(err, errLost):
			return false, nil
		case err == nil:
			return true, nil
		case !raced(err):
			return false, wrap("change set create", s.table, cs.ID, err)
		case attempt >= s.opts.MaxAttempts:
			return false, &ConflictError{Op: "change set create", Table: s.table, Key: cs.ID, Attempts: attempt}
		}
		// another write of the environment's registry came in between (changesets_registry.go)
		sleep(ctx, attempt)
		if err := ctx.Err(); err != nil {
			return false, wrap("change set create", s.table, cs.ID, err)
		}
	}
}

// Get returns a change set; an unknown id gives an error matching changeset.ErrNotFound.
func (s *ChangeSets) Get(ctx context.Context, id string) (*changeset.ChangeSet, error) {
	cs, _, _, err := s.get(ctx, id)
	return cs, err
}

func (s *ChangeSets) get(ctx context.Context, id string) (cs *changeset.ChangeSet, version int64, created string, err error) {
	if id == "" || reserved(id) { // no change set has such an id (Create)
		return nil, 0, "", fmt.Errorf("dynamo: change set %q: %w", id, changeset.ErrNotFound)
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            map[string]types.AttributeValue{attrID: str(id)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, 0, "", wrap("change set get", s.table, id, err)
	}
	if out.Item == nil {
		return nil, 0, "", fmt.Errorf("dynamo: change set %s: %w", id, changeset.ErrNotFound)
	}
	cs, err = decodeChangeSet(out.Item)
	if err == nil {
		version, err = getNum(out.Item, attrVersion)
	}
	if err == nil {
		created, err = getStr(out.Item, attrCreated)
	}
	if err != nil {
		return nil, 0, "", fmt.Errorf("dynamo: change set %s (table %s): unreadable item: %w", id, s.table, err)
	}
	return cs, version, created, nil
}

// Update applies fn to the stored change set and stores the result unless fn fails; see
// ChangeSets for how it is made atomic.
func (s *ChangeSets) Update(ctx context.Context, id string, fn func(*changeset.ChangeSet) error) (*changeset.ChangeSet, error) {
	for attempt := 1; ; attempt++ {
		cs, version, created, err := s.get(ctx, id)
		if err != nil {
			return nil, err
		}
		had, was := cs.Applied(), entryOf(cs)
		if err := fn(cs); err != nil {
			return nil, err
		}
		item, err := s.item(cs, id, created, version+1)
		if err != nil {
			return nil, err
		}
		index := s.indexed(id, cs, &was)
		reg, err := s.registered(ctx, id, &was, entryOf(cs))
		if err != nil {
			return nil, wrap("change set update", s.table, id, err)
		}
		if reg != nil {
			index = append(index, reg)
		}
		err = s.put(ctx, &types.Put{
			TableName:                 aws.String(s.table),
			Item:                      item,
			ConditionExpression:       aws.String("#v = :v"),
			ExpressionAttributeNames:  map[string]string{"#v": attrVersion},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(version)},
		}, cs, cs.AppliedSince(had), index)
		switch {
		case err == nil:
			return cs, nil
		case !raced(err):
			return nil, wrap("change set update", s.table, id, err)
		case attempt >= s.opts.MaxAttempts:
			return nil, &ConflictError{Op: "change set update", Table: s.table, Key: id, Attempts: attempt}
		}
		sleep(ctx, attempt)
		if err := ctx.Err(); err != nil {
			return nil, wrap("change set update", s.table, id, err)
		}
	}
}

// List returns every change set, newest first (ties by id).
func (s *ChangeSets) List(ctx context.Context) ([]*changeset.ChangeSet, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(IndexCreated),
		KeyConditionExpression:    aws.String("#k = :k"),
		ExpressionAttributeNames:  map[string]string{"#k": attrKind},
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": str(kindChangeSet)},
		ScanIndexForward:          aws.Bool(false),
	}
	var keys []map[string]types.AttributeValue
	for {
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, wrap("change set list", s.table, "", err)
		}
		for _, it := range out.Items {
			keys = append(keys, map[string]types.AttributeValue{attrID: it[attrID]})
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return s.read(ctx, keys)
}

// sortNewest sorts sets as List gives them: newest first, of equal creation times by id.
func sortNewest(sets []*changeset.ChangeSet) {
	slices.SortFunc(sets, func(a, b *changeset.ChangeSet) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// unreadable is the error of a change set item that does not decode.
func unreadable(table string, it map[string]types.AttributeValue, err error) error {
	return fmt.Errorf("dynamo: change set %s (table %s): unreadable item: %w", sval(it, attrID), table, err)
}

// item is the stored form of cs under id.
func (s *ChangeSets) item(cs *changeset.ChangeSet, id, created string, version int64) (map[string]types.AttributeValue, error) {
	raw, err := json.Marshal(cs)
	if err != nil {
		return nil, &ValidationError{Op: "change set " + id, Msg: err.Error()}
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	item := map[string]types.AttributeValue{
		attrID:        str(id),
		attrKind:      str(kindChangeSet),
		attrCreated:   str(created),
		attrVersion:   num(version),
		attrDoc:       &types.AttributeValueMemberB{Value: buf.Bytes()},
		attrDocBytes:  num(int64(len(raw))),
		attrUpdatedAt: str(now().UTC().Format(tsLayout)),
	}
	if size := itemSize(item); size > MaxItemSize {
		return nil, &TooLargeError{Table: s.table, Key: id, Size: size, Limit: MaxItemSize,
			What: fmt.Sprintf("change set of %d components: %d bytes of JSON, %d gzip-compressed", len(cs.Nodes), len(raw), buf.Len())}
	}
	return item, nil
}

func createdKey(cs *changeset.ChangeSet) string {
	t := cs.CreatedAt.UTC()
	if t.Before(minTime) || t.After(maxTime) {
		t = minTime
	}
	return t.Format(tsLayout) + "#" + cs.ID
}

func decodeChangeSet(it map[string]types.AttributeValue) (*changeset.ChangeSet, error) {
	var raw []byte
	switch d := it[attrDoc].(type) {
	case *types.AttributeValueMemberB:
		zr, err := gzip.NewReader(bytes.NewReader(d.Value))
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", attrDoc, err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("attribute %s: %w", attrDoc, err)
		}
	case *types.AttributeValueMemberS: // plain JSON, as an operator may have written it
		raw = []byte(d.Value)
	default:
		return nil, fmt.Errorf("attribute %s: missing or neither binary nor string", attrDoc)
	}
	var cs changeset.ChangeSet
	if err := json.Unmarshal(raw, &cs); err != nil {
		return nil, fmt.Errorf("attribute %s: %w", attrDoc, err)
	}
	return &cs, nil
}
