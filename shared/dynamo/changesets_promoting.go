package dynamo

// The change sets with promotion work (changeset.PromotionLister: a promotion whose soak started
// and that was not published yet, or a held try neither tried again nor rejected), kept in the
// change set table by an item per change set beside it:
//
//	id           S   "#promoting#" + hex SHA-256 of the change set id
//	cs           S   the change set
//	kind         S   "promoting", while changeset.PromotionWaiting holds of it: the partition
//	created      S   } and sort key of the by-created index (the change set's created, which
//	                     ends with its id)
//	updated_at   S   time of the last write
//
// and one marker, id "#promoting#complete" (complete BOOL), saying every change set of the table
// that has promotion work has its item. The item is written in the TransactWriteItems that
// writes the change set when PromotionWaiting changes (put again without kind and created when
// it ends: out of the index), as the items of the unfinished change sets are
// (changesets_unfinished.go).
//
// Promoting queries the partition "promoting" of by-created (keys only) and reads the marker
// and the change sets the sort keys name in BatchGetItems of 100 keys with consistent reads,
// keeping those of which PromotionWaiting holds: the scheduled check for due promotions
// (shared/promotion's Start, every minute) reads them, not every change set ever made. Until the
// marker says complete and has settled — a table written before these items, or one whose
// marker is under an hour old (see changesets_unfinished.go) — it answers from List and
// backfills: a Put of the item of each change set List gave with promotion work, on condition
// that it has none, then the marker, unless it is there.

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/changeset"
)

const (
	promotingPrefix = "#promoting#"
	promotingMarker = promotingPrefix + "complete"
	kindPromoting   = "promoting"
)

var _ changeset.PromotionLister = (*ChangeSets)(nil)

// promotingKey is the id of change set id's item.
func promotingKey(id string) string { return promotingPrefix + hexSum(id) }

// promotingPut is the Put of change set id's item as e says (without kind when it has no
// promotion work).
func (s *ChangeSets) promotingPut(id string, e queueEntry) *types.Put {
	item := map[string]types.AttributeValue{
		attrID: str(promotingKey(id)), attrCS: str(id), attrUpdatedAt: str(now().UTC().Format(tsLayout)),
	}
	if e.promoting {
		item[attrKind], item[attrCreated] = str(kindPromoting), str(e.created)
	}
	return &types.Put{TableName: aws.String(s.table), Item: item}
}

// Promoting returns the change sets with promotion work (changeset.PromotionWaiting), newest
// first (changeset.PromotionLister). See the top of this file.
func (s *ChangeSets) Promoting(ctx context.Context) ([]*changeset.ChangeSet, error) {
	return s.partitionSets(ctx, partition{op: "change set promoting", what: "a change set with promotion work",
		kind: kindPromoting, marker: promotingMarker,
		idOf: func(created string) (string, bool) {
			_, id, ok := strings.Cut(created, "#")
			return id, ok
		},
		keep:     (*changeset.ChangeSet).PromotionWaiting, // its promotion ended since the index was read: left out
		backfill: s.backfillPromoting,
	})
}

// backfillPromoting puts the item of every change set of all with promotion work, on condition
// that it has none, then the marker. Its failures are left for the next Promoting to try
// again: the answer was taken from List.
func (s *ChangeSets) backfillPromoting(ctx context.Context, all []*changeset.ChangeSet) {
	for _, cs := range all {
		if !cs.PromotionWaiting() {
			continue
		}
		p := s.promotingPut(cs.ID, entryOf(cs))
		_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: p.TableName, Item: p.Item,
			ConditionExpression:      aws.String("attribute_not_exists(#id)"),
			ExpressionAttributeNames: map[string]string{"#id": attrID},
		})
		if err != nil && !isConditionFailed(err) {
			return
		}
	}
	s.putMarker(ctx, promotingMarker)
}
