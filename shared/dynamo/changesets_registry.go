package dynamo

// The registry of an environment's unfinished change sets: one item per environment in the base
// table, read with a consistent read, so that the ordering's question (Unfinished) sees a change
// set the moment its create is written, where the by-created index, which DynamoDB keeps
// eventually consistent, may not show it yet:
//
//	id        S   "#unfinished#env#" + hex SHA-256 of the environment
//	env       S   the environment
//	version   N   1 on its first Put, +1 on every Put: the optimistic lock
//	sets      L   the ids of the environment's unfinished change sets (S), absent when none
//	updated_at S  time of the last write
//
// The transaction that creates a change set not done, or that finishes one or starts one done
// again, Puts the registry too, on condition that its version is still the one read (a
// consistent GetItem just before): two resolves creating change sets of one environment at once
// serialize on it, the one that loses reads it again and tries again (Create), or starts its
// Update again (raced), so that neither registry write drops the other's change set. Only the
// transactions that change which change sets are unfinished write it: a change set queued, or
// released, or whose nodes change state without finishing it, does not.
//
// Unfinished reads the registry in the BatchGetItem of the marker and of the items the index
// names, and then, consistently too, the items of the change sets the registry names and the
// index did not (none, once the index has caught up): a Query and a BatchGetItem as a rule, a
// second BatchGetItem within the index's lag. Both sources count: the index holds the change
// sets created before the registry (a table from before it: the registry of an environment
// starts with the first change set created after), the registry those the index does not show
// yet. A change set the registry names that is done (finished by a function of a version from
// before the registry, which does not take it out) is dropped by its item, read consistently.
// Until the marker has settled, the answer comes from List, and the change sets the registry
// names that List did not give are read and added.
//
// A change set the registry names whose item an answer finds done or gone, read after the
// registry (in the second BatchGetItem: a done item is out of the index) — finished by a
// function of a version from before the registry, which did not take it out, or deleted by hand
// — is taken out by that answer (prune: a Put on condition of the version read), so that the
// second BatchGetItem is not made again for it.
//
// A registry that would grow past an item's size (thousands of unfinished change sets in one
// environment) is not written: the index answers alone, as before the registry.
//
// The functions may put items of the table, not update or delete them (terraform/iam.tf): the
// registry is Put whole.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/changeset"
)

const (
	registryPrefix = unfinishedPrefix + "env#"
	attrSets       = "sets"
)

// errRegistry says the condition on an environment's registry failed: another write of it came
// in between the read and the write.
var errRegistry = errors.New("the registry of the unfinished change sets moved")

// registryKey is the id of env's registry.
func registryKey(env string) string { return registryPrefix + hexSum(env) }

// registryIDs reads a registry item: its version (0 for none) and the change sets it names.
func registryIDs(it map[string]types.AttributeValue) (int64, []string, error) {
	if it == nil {
		return 0, nil, nil
	}
	v, err := getNum(it, attrVersion)
	if err != nil {
		return 0, nil, err
	}
	var ids []string
	switch l := it[attrSets].(type) {
	case nil:
	case *types.AttributeValueMemberL:
		for _, e := range l.Value {
			s, ok := e.(*types.AttributeValueMemberS)
			if !ok {
				return 0, nil, fmt.Errorf("attribute %s: not a list of strings", attrSets)
			}
			ids = append(ids, s.Value)
		}
	default:
		return 0, nil, fmt.Errorf("attribute %s: not a list", attrSets)
	}
	return v, ids, nil
}

// registered is the Put of env's registry that writing change set id (before: what the stored
// one holds, nil when creating it; after: what it will hold) makes, read now with a consistent
// GetItem; nil when the write does not change which change sets are unfinished.
func (s *ChangeSets) registered(ctx context.Context, id string, before *queueEntry, after queueEntry) (*types.Put, error) {
	p, _, err := s.registeredIDs(ctx, id, before, after)
	return p, err
}

// registeredIDs is registered, and the change sets the registry read names (nil when it was
// not read).
func (s *ChangeSets) registeredIDs(ctx context.Context, id string, before *queueEntry, after queueEntry) (*types.Put, []string, error) {
	if before == nil && after.done || before != nil && before.done == after.done {
		return nil, nil, nil
	}
	key := registryKey(after.env)
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: map[string]types.AttributeValue{attrID: str(key)}, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, nil, err
	}
	version, ids, err := registryIDs(out.Item)
	if err != nil {
		return nil, nil, fmt.Errorf("dynamo: change set table %s: registry of the unfinished change sets of %s: unreadable item: %w", s.table, after.env, err)
	}
	read := slices.Clone(ids)
	has := slices.Contains(ids, id)
	switch {
	case !after.done && has, after.done && !has:
		return nil, read, nil
	case after.done:
		ids = slices.DeleteFunc(ids, func(x string) bool { return x == id })
	default:
		ids = append(ids, id)
	}
	return s.registryPut(after.env, version, ids), read, nil
}

// sinceLook returns a change set of env, other than cs, that the registry read by cs's create
// names (registered), that looked (the change sets the look before the create found: resolve's
// changeset.Unfinished) does not, and that is unfinished and shares a component with cs: one
// created (or started again) between the look and the create, which the look did not see and
// cs is not queued behind. "" when there is none — always when every change set registered
// was looked at, as a rule, and then nothing is read; else their items, in a consistent
// BatchGetItem: registered in the same transaction as the registry, they are at least as new.
func (s *ChangeSets) sinceLook(ctx context.Context, cs *changeset.ChangeSet, registered, looked []string) (string, error) {
	var keys []map[string]types.AttributeValue
	for _, id := range registered {
		if id != cs.ID && !slices.Contains(looked, id) && !reserved(id) {
			keys = append(keys, map[string]types.AttributeValue{attrID: str(unfinishedKey(id))})
		}
	}
	if len(keys) == 0 {
		return "", nil
	}
	items, err := batchGet(ctx, s.client, s.table, keys)
	if err != nil {
		return "", err
	}
	for _, it := range items {
		if sval(it, attrEnv) != cs.Env {
			continue
		}
		q, comps, ok, err := queuedOf(it)
		if err != nil {
			return "", fmt.Errorf("dynamo: change set table %s: item %s of an unfinished change set: unreadable: %w", s.table, sval(it, attrID), err)
		}
		if ok && slices.ContainsFunc(comps, func(c string) bool { _, has := cs.Nodes[c]; return has }) {
			return q.ID, nil
		}
	}
	return "", nil
}

// registryPut is the Put of env's registry naming ids, on condition that its version is still
// version (0: that there is none); nil when it would not fit in an item.
func (s *ChangeSets) registryPut(env string, version int64, ids []string) *types.Put {
	item := map[string]types.AttributeValue{
		attrID: str(registryKey(env)), attrEnv: str(env), attrVersion: num(version + 1),
		attrUpdatedAt: str(now().UTC().Format(tsLayout)),
	}
	if len(ids) > 0 {
		l := make([]types.AttributeValue, len(ids))
		for i, x := range ids {
			l[i] = str(x)
		}
		item[attrSets] = &types.AttributeValueMemberL{Value: l}
	}
	if itemSize(item) > MaxItemSize {
		return nil // the index answers alone (see the top of this file)
	}
	p := &types.Put{TableName: aws.String(s.table), Item: item, ExpressionAttributeNames: map[string]string{}}
	if version == 0 {
		p.ConditionExpression = aws.String("attribute_not_exists(#id)")
		p.ExpressionAttributeNames["#id"] = attrID
	} else {
		p.ConditionExpression = aws.String("#v = :v")
		p.ExpressionAttributeNames["#v"] = attrVersion
		p.ExpressionAttributeValues = map[string]types.AttributeValue{":v": num(version)}
	}
	return p
}

// prune takes stale, change sets env's registry (at version, naming ids) names that are done or
// gone — finished by a function of a version from before the registry, or deleted by hand — out
// of it, unless it was written since (a change set finished since the registry was read is
// taken out by the write finishing it). Best effort: a failure leaves them for the next answer.
func (s *ChangeSets) prune(ctx context.Context, env string, version int64, ids, stale []string) {
	if len(stale) == 0 {
		return
	}
	p := s.registryPut(env, version, slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(stale, id) }))
	if p == nil {
		return
	}
	_, _ = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: p.TableName, Item: p.Item, ConditionExpression: p.ConditionExpression,
		ExpressionAttributeNames: p.ExpressionAttributeNames, ExpressionAttributeValues: p.ExpressionAttributeValues,
	})
}

// isRegistry reports a Put of an environment's registry.
func isRegistry(p *types.Put) bool {
	return p != nil && len(sval(p.Item, attrID)) > len(registryPrefix) && sval(p.Item, attrID)[:len(registryPrefix)] == registryPrefix
}
