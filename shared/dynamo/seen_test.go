package dynamo_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/dynamo"
)

// Claims carry a TTL a day past their lease; done markers none unless DoneTTL is set.
func TestSeenTTL(t *testing.T) {
	client, _ := newClient(t)
	table := newTables(t, client).Seen
	get := func(pk string) map[string]types.AttributeValue {
		out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(table),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}
	s := dynamo.NewSeen(client, table, dynamo.SeenOptions{})
	before := time.Now()
	if ok, err := s.Claim(t.Context(), "k", time.Minute); !ok || err != nil {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	claim := get("CLAIM#k")
	ttl, ok := claim["ttl"].(*types.AttributeValueMemberN)
	if !ok {
		t.Fatalf("claim item %v has no numeric ttl", claim)
	}
	if want := before.Add(time.Minute + 24*time.Hour).Unix(); ttl.Value < "1" || abs(atoi(t, ttl.Value)-want) > 5 {
		t.Errorf("claim ttl = %s, want about %d", ttl.Value, want)
	}
	if err := s.Mark(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if get("CLAIM#k") != nil {
		t.Errorf("Mark left the claim")
	}
	if done := get("DONE#k"); done == nil || done["ttl"] != nil {
		t.Errorf("done item = %v; want one without ttl", done)
	}
	s = dynamo.NewSeen(client, table, dynamo.SeenOptions{DoneTTL: 30 * 24 * time.Hour})
	if err := s.Mark(t.Context(), "k2"); err != nil {
		t.Fatal(err)
	}
	if done := get("DONE#k2"); done == nil || done["ttl"] == nil {
		t.Errorf("done item with DoneTTL = %v; want a ttl", done)
	}
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
