package dynamo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/pipeline"
)

// Seen table attributes and key prefixes.
const (
	attrExpires  = "expires"   // N: a claim's lease end, unix nanoseconds
	attrTTL      = "ttl"       // N: unix seconds after which DynamoDB's TTL deletes the item
	attrMarkedAt = "marked_at" // S: when a key was marked done (tsLayout)
	attrRecord   = "value"     // S: a record's value
	attrToken    = "token"     // S: a claim's own token (pipeline.ClaimTokens), when Claim took it
	claimPrefix  = "CLAIM#"
	donePrefix   = "DONE#"
	recordPrefix = "RECORD#"
	// claimGrace is how long after its lease ends a claim item is left for TTL to delete.
	// Expiry itself is decided by expires, never by TTL, which deletes lazily (within days).
	claimGrace = 24 * time.Hour
)

// SeenOptions tune Seen.
type SeenOptions struct {
	// DoneTTL, when positive, lets DynamoDB's TTL delete done markers that long after Mark. A
	// message redelivered after that is handled again, so keep it well beyond the queues'
	// retention (SQS keeps messages at most 14 days). Zero keeps them forever, as the
	// embedded store does.
	DoneTTL time.Duration
}

// Seen is pipeline.Seen on one DynamoDB table, two kinds of item per idempotency key:
//
//	pk CLAIM#<key>   expires (N, unix ns), ttl (N, unix s),  a claim; TTL removes it a day after it ran out
//	                 token (S)
//	pk DONE#<key>    marked_at, ttl if DoneTTL is set         the key is done
//	pk RECORD#<key>  value (S)                                 a record (pipeline.Records): first wins
//
// Claim is a PutItem on condition attribute_not_exists(pk) OR expires < now: exactly one of
// concurrent claimants wins, and a claim whose holder died is taken over once its lease has
// run out (by the claimant's clock: keep worker clocks synchronised, as EC2 and Lambda do).
// Mark is one TransactWriteItems putting the done marker and deleting the claim. Done is a
// consistent GetItem. Claims and done markers are separate items so that TTL, which deletes
// whole items, can never remove a done marker with a claim.
//
// A claim carries a token the Seen remembers until it releases or marks the key: Release is a
// DeleteItem and Renew a PutItem on condition that the stored claim has that token, so a worker
// whose claim ran out mid-handler and was taken over by another does not drop (letting a third
// worker in) or extend the other's claim; its Renew reports the claim lost.
type Seen struct {
	client API
	table  string
	opts   SeenOptions
	tokens pipeline.ClaimTokens
}

var (
	_ pipeline.Seen    = (*Seen)(nil)
	_ pipeline.Records = (*Seen)(nil)
)

// NewSeen returns the idempotency store on table.
func NewSeen(client API, table string, opts SeenOptions) *Seen {
	return &Seen{client: client, table: table, opts: opts}
}

func (s *Seen) key(op, prefix, key string) (map[string]types.AttributeValue, error) {
	if len(prefix)+len(key) > maxPartitionKey {
		return nil, &ValidationError{Op: "seen " + op, Msg: fmt.Sprintf("key longer than %d bytes", maxPartitionKey-len(prefix))}
	}
	return map[string]types.AttributeValue{attrPK: str(prefix + key)}, nil
}

// Done reports whether key was marked.
func (s *Seen) Done(ctx context.Context, key string) (bool, error) {
	k, err := s.key("done", donePrefix, key)
	if err != nil {
		return false, err
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: k,
		ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("#pk"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK}})
	if err != nil {
		return false, wrap("seen done", s.table, key, err)
	}
	return out.Item != nil, nil
}

// Claim takes key for lease unless a live claim holds it.
func (s *Seen) Claim(ctx context.Context, key string, lease time.Duration) (bool, error) {
	token := pipeline.NewClaimToken()
	ok, err := s.putClaim(ctx, "claim", key, lease, token, "attribute_not_exists(#pk) OR #e < :now", nil)
	if ok {
		s.tokens.Keep(key, token)
	}
	return ok, err
}

// Renew moves the expiry of key's live claim, the one this Seen took, to lease from now
// (pipeline.Renewer).
func (s *Seen) Renew(ctx context.Context, key string, lease time.Duration) (bool, error) {
	token := s.tokens.Of(key)
	cond, vals := ours(token)
	return s.putClaim(ctx, "renew", key, lease, token, "attribute_exists(#pk) AND #e >= :now AND "+cond, vals)
}

// ours is the condition that the stored claim has token ("": none, a claim not taken by Claim),
// and its values.
func ours(token string) (string, map[string]types.AttributeValue) {
	if token == "" {
		return "attribute_not_exists(#t)", nil
	}
	return "#t = :t", map[string]types.AttributeValue{":t": str(token)}
}

// putClaim writes key's claim item with token, expiring lease from now, when condition holds
// of the item stored (:now is now, vals the condition's other values); false when it does not.
func (s *Seen) putClaim(ctx context.Context, op, key string, lease time.Duration, token, condition string, vals map[string]types.AttributeValue) (bool, error) {
	k, err := s.key(op, claimPrefix, key)
	if err != nil {
		return false, err
	}
	t := now()
	expires := t.Add(lease)
	k[attrExpires] = num(expires.UnixNano())
	k[attrTTL] = num(expires.Add(claimGrace).Unix())
	if token != "" {
		k[attrToken] = str(token)
	}
	values := map[string]types.AttributeValue{":now": num(t.UnixNano())}
	for n, v := range vals {
		values[n] = v
	}
	names := map[string]string{"#pk": attrPK, "#e": attrExpires}
	if strings.Contains(condition, "#t") {
		names["#t"] = attrToken
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      k,
		ConditionExpression:       aws.String(condition),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, wrap("seen "+op, s.table, key, err)
	}
	return true, nil
}

// Release drops the claim this Seen took of key, without marking; another's claim stays.
func (s *Seen) Release(ctx context.Context, key string) error {
	k, err := s.key("release", claimPrefix, key)
	if err != nil {
		return err
	}
	token := s.tokens.Of(key)
	cond, vals := ours(token)
	_, err = s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: k,
		ConditionExpression: aws.String(cond), ExpressionAttributeNames: map[string]string{"#t": attrToken},
		ExpressionAttributeValues: vals})
	if isConditionFailed(err) {
		err = nil // the claim is another worker's now, or gone: nothing of ours to drop
	}
	if err == nil {
		s.tokens.Forget(key, token)
	}
	return wrap("seen release", s.table, key, err)
}

// Mark records key as done and drops its claim, in one transaction.
func (s *Seen) Mark(ctx context.Context, key string) error {
	done, err := s.key("mark", donePrefix, key)
	if err != nil {
		return err
	}
	claim, _ := s.key("mark", claimPrefix, key)
	t := now()
	done[attrMarkedAt] = str(t.UTC().Format(tsLayout))
	if s.opts.DoneTTL > 0 {
		done[attrTTL] = num(t.Add(s.opts.DoneTTL).Unix())
	}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(s.table), Item: done}},
		{Delete: &types.Delete{TableName: aws.String(s.table), Key: claim}},
	}}
	token := s.tokens.Of(key)
	// A claim written at the same moment cancels the transaction (TransactionConflict): retry.
	for attempt := 1; ; attempt++ {
		_, err = s.client.TransactWriteItems(ctx, in)
		if err == nil {
			s.tokens.Forget(key, token) // not before: a Mark that failed is followed by a Release
		}
		if err == nil || attempt == 5 || !IsTransient(err) || ctx.Err() != nil {
			return wrap("seen mark", s.table, key, err)
		}
		sleep(ctx, attempt+2)
	}
}

// RecordFirst stores value under key unless one is stored (a PutItem on condition
// attribute_not_exists), and returns the stored value, read consistently when another call won.
func (s *Seen) RecordFirst(ctx context.Context, key, value string) (string, error) {
	k, err := s.key("record", recordPrefix, key)
	if err != nil {
		return "", err
	}
	item := map[string]types.AttributeValue{attrPK: k[attrPK], attrRecord: str(value)}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item,
		ConditionExpression: aws.String("attribute_not_exists(#pk)"), ExpressionAttributeNames: map[string]string{"#pk": attrPK}})
	switch {
	case err == nil:
		return value, nil
	case !isConditionFailed(err):
		return "", wrap("seen record", s.table, key, err)
	}
	stored, err := s.Recorded(ctx, key)
	if err == nil && stored == "" {
		err = fmt.Errorf("dynamo: seen record %q: the condition failed but no record is there", key)
	}
	return stored, err
}

// Recorded returns the value stored under key (a consistent read), "" when none.
func (s *Seen) Recorded(ctx context.Context, key string) (string, error) {
	k, err := s.key("recorded", recordPrefix, key)
	if err != nil {
		return "", err
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return "", wrap("seen recorded", s.table, key, err)
	}
	v, _ := out.Item[attrRecord].(*types.AttributeValueMemberS)
	if v == nil {
		return "", nil
	}
	return v.Value, nil
}
