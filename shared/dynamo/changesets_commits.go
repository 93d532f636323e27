package dynamo

// The commits of an environment's change sets, newest first (changeset.CommitLister): what resolve
// compares every pushed commit with (workers/resolve's newest), usually the latest few dozen.
// Read from the newest change set of the table backwards, a page of by-created and a
// BatchGetItem of its documents at a time, until enough of the environment's are found: the
// reads grow with how far back the environment's latest change sets go, not with the whole
// history, which List read at every push.

import (
	"context"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/changeset"
)

// newestPage is how many change sets eachNewest reads at a time.
const newestPage = 100

var _ changeset.CommitLister = (*ChangeSets)(nil)

// Commits returns the commits of env's change sets ("" for one without), newest first as List
// orders them, skipping the first offset, at most limit (changeset.CommitLister).
func (s *ChangeSets) Commits(ctx context.Context, env string, offset, limit int) ([]string, error) {
	var out []string
	if limit <= 0 {
		return out, nil
	}
	err := s.eachNewest(ctx, func(cs *changeset.ChangeSet) bool {
		if cs.Env != env {
			return true
		}
		if offset > 0 {
			offset--
			return true
		}
		out = append(out, cs.Commit)
		return len(out) < limit
	})
	return out, err
}

// eachNewest calls fn with the change sets newest first, as List orders them (of equal creation
// times the smaller id first), until fn returns false: by-created's keys a page at a time and
// their documents in a BatchGetItem. The keys of the last creation time of a page are held back
// until the next page, which may have more of that time.
func (s *ChangeSets) eachNewest(ctx context.Context, fn func(*changeset.ChangeSet) bool) error {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(IndexCreated),
		KeyConditionExpression:    aws.String("#k = :k"),
		ExpressionAttributeNames:  map[string]string{"#k": attrKind},
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": str(kindChangeSet)},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(newestPage),
	}
	at := func(it map[string]types.AttributeValue) string {
		ts, _, _ := strings.Cut(sval(it, attrCreated), "#")
		return ts
	}
	var pending []map[string]types.AttributeValue
	for {
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return wrap("change set list", s.table, "", err)
		}
		pending = append(pending, out.Items...)
		last := len(out.LastEvaluatedKey) == 0
		ready := pending
		if !last && len(pending) > 0 {
			ts := at(pending[len(pending)-1])
			n := len(pending)
			for n > 0 && at(pending[n-1]) == ts {
				n--
			}
			ready = pending[:n]
		}
		if len(ready) > 0 {
			keys := make([]map[string]types.AttributeValue, len(ready))
			for i, it := range ready {
				keys[i] = map[string]types.AttributeValue{attrID: it[attrID]}
			}
			sets, err := s.read(ctx, keys)
			if err != nil {
				return err
			}
			for _, cs := range sets {
				if !fn(cs) {
					return nil
				}
			}
			pending = slices.Clone(pending[len(ready):])
		}
		if last {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// read returns the change sets of keys, newest first as List orders them.
func (s *ChangeSets) read(ctx context.Context, keys []map[string]types.AttributeValue) ([]*changeset.ChangeSet, error) {
	items, err := batchGet(ctx, s.client, s.table, keys)
	if err != nil {
		return nil, wrap("change set list", s.table, "", err)
	}
	out := make([]*changeset.ChangeSet, 0, len(items))
	for _, it := range items {
		cs, err := decodeChangeSet(it)
		if err != nil {
			return nil, unreadable(s.table, it, err)
		}
		out = append(out, cs)
	}
	sortNewest(out)
	return out, nil
}
