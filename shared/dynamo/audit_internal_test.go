package dynamo

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/audit"
)

// readsAPI answers reads from fixed items and records every Query; it refuses writes.
type readsAPI struct {
	queries []*dynamodb.QueryInput
	chains  []string
}

func (a *readsAPI) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	a.queries = append(a.queries, in)
	var items []map[string]types.AttributeValue
	for _, c := range a.chains {
		items = append(items, map[string]types.AttributeValue{attrPK: str(chainsPK), attrSK: str(c)})
	}
	return &dynamodb.QueryOutput{Items: items}, nil
}

func (a *readsAPI) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	out := map[string][]map[string]types.AttributeValue{}
	for table, ka := range in.RequestItems {
		for _, k := range ka.Keys {
			out[table] = append(out[table], map[string]types.AttributeValue{attrPK: k[attrPK], attrSK: str(headSK), attrSeq: num(1), attrHash: str("h")})
		}
	}
	return &dynamodb.BatchGetItemOutput{Responses: out}, nil
}

func (a *readsAPI) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{}, nil
}

func (a *readsAPI) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, errors.New("no writes")
}

func (a *readsAPI) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return nil, errors.New("no writes")
}

func (a *readsAPI) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return nil, errors.New("no writes")
}

// Heads — what a checkpoint digests and VerifyLog walks — lists the chain directory with a
// consistent read, as it reads the heads: an eventually consistent one may miss a chain created
// a moment before, left out of the checkpoint and the verification.
func TestAuditHeadsListsTheChainsConsistently(t *testing.T) {
	api := &readsAPI{chains: []string{"a", "b"}}
	heads, err := NewAuditLog(api, "t-audit", AuditOptions{}).Heads(t.Context())
	if err != nil || len(heads) != 2 {
		t.Fatalf("Heads = %v, %v", heads, err)
	}
	if len(api.queries) != 1 || !aws.ToBool(api.queries[0].ConsistentRead) {
		t.Errorf("Heads queried the chain directory %d time(s), consistent %v; want one consistent Query",
			len(api.queries), len(api.queries) > 0 && aws.ToBool(api.queries[0].ConsistentRead))
	}
}

// keyLimitAPI is readsAPI refusing, as DynamoDB does, a Query whose key value exceeds 2048 bytes.
type keyLimitAPI struct{ readsAPI }

func (a *keyLimitAPI) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if v, ok := in.ExpressionAttributeValues[":k"].(*types.AttributeValueMemberS); ok && len(v.Value) > maxPartitionKey {
		return nil, errors.New("ValidationException: One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes")
	}
	return a.readsAPI.Query(ctx, in, o...)
}

// A question naming a value no record can hold (longer than an index key: Append refuses it)
// has no records, as on the embedded log — not an error from DynamoDB refusing the Query
// (GET /log?actor=<2 KB> answered 500 instead of an empty page).
func TestAuditQueryOfAValueLongerThanAKeyFindsNothing(t *testing.T) {
	long := strings.Repeat("x", maxPartitionKey+1)
	l := NewAuditLog(&keyLimitAPI{}, "t-audit", AuditOptions{})
	for name, q := range map[string]audit.Query{"actor": {Actor: long}, "component": {Component: long}, "deployment": {DeploymentID: long},
		"correlation": {Correlation: long}, "correlation and actor": {Correlation: "c", Actor: long}} {
		recs, err := l.Query(t.Context(), q)
		if err != nil || len(recs) != 0 {
			t.Errorf("Query by %s of %d bytes = %d records, %v; want none", name, len(long), len(recs), err)
		}
	}
}
