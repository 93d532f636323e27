package dynamo

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// getStr reads a required string attribute.
func getStr(it map[string]types.AttributeValue, name string) (string, error) {
	v, ok := it[name].(*types.AttributeValueMemberS)
	if !ok {
		return "", fmt.Errorf("attribute %s: missing or not a string", name)
	}
	return v.Value, nil
}

// getOptStr reads a string attribute that is absent when empty.
func getOptStr(it map[string]types.AttributeValue, name string) (string, error) {
	switch v := it[name].(type) {
	case nil:
		return "", nil
	case *types.AttributeValueMemberS:
		return v.Value, nil
	default:
		return "", fmt.Errorf("attribute %s: not a string (%T)", name, v)
	}
}

// getNum reads a required integer attribute.
func getNum(it map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := it[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("attribute %s: missing or not a number", name)
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("attribute %s: %w", name, err)
	}
	return n, nil
}

// itemSize estimates an item's size as DynamoDB counts it against MaxItemSize: the UTF-8
// length of each attribute name plus its value (strings and binaries by length, numbers by
// significant digits, rounded up: about one byte per two digits plus one).
func itemSize(it map[string]types.AttributeValue) int {
	n := 0
	for name, v := range it {
		n += len(name) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return (len(v.Value)+1)/2 + 1
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

// batchGet reads keys of table with consistent reads, 100 keys per request, retrying the keys
// DynamoDB leaves unprocessed (it does under load). projection, if set, limits the attributes.
func batchGet(ctx context.Context, client API, table string, keys []map[string]types.AttributeValue, projection ...string) ([]map[string]types.AttributeValue, error) {
	var out []map[string]types.AttributeValue
	for start := 0; start < len(keys); start += 100 {
		ka := &types.KeysAndAttributes{Keys: keys[start:min(start+100, len(keys))], ConsistentRead: aws.Bool(true)}
		if len(projection) > 0 {
			ka.ExpressionAttributeNames = map[string]string{}
			expr := ""
			for i, p := range projection {
				n := "#p" + strconv.Itoa(i)
				ka.ExpressionAttributeNames[n] = p
				if i > 0 {
					expr += ", "
				}
				expr += n
			}
			ka.ProjectionExpression = aws.String(expr)
		}
		req := map[string]types.KeysAndAttributes{table: *ka}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt > 0 {
				if attempt > 10 {
					return nil, fmt.Errorf("batch get: keys still unprocessed after %d attempts (throttled)", attempt)
				}
				sleep(ctx, attempt+2)
			}
			res, err := client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, err
			}
			out = append(out, res.Responses[table]...)
			req = res.UnprocessedKeys
		}
	}
	return out, nil
}

// now is the clock of leases; tests do not replace it (they use short leases).
var now = time.Now
