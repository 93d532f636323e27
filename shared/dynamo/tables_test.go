package dynamo_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/dynamo"
)

// CreateTables makes what Definitions say, and running it again changes nothing.
func TestCreateTables(t *testing.T) {
	client, _ := newClient(t)
	names := newTables(t, client)
	if err := dynamo.CreateTables(t.Context(), client, names); err != nil {
		t.Fatalf("CreateTables again: %v", err)
	}
	for _, def := range dynamo.Definitions(names) {
		out, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: def.Create.TableName})
		if err != nil {
			t.Fatal(err)
		}
		d := out.Table
		if d.TableStatus != types.TableStatusActive || len(d.GlobalSecondaryIndexes) != len(def.Create.GlobalSecondaryIndexes) {
			t.Errorf("%s: status %s, %d indexes; want ACTIVE, %d", *d.TableName, d.TableStatus,
				len(d.GlobalSecondaryIndexes), len(def.Create.GlobalSecondaryIndexes))
		}
		if !def.PointInTimeRecovery {
			t.Errorf("%s: point-in-time recovery not in the definition", *d.TableName)
		}
		if def.TTLAttribute != "" {
			ttl, err := client.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: def.Create.TableName})
			if err != nil || ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled ||
				aws.ToString(ttl.TimeToLiveDescription.AttributeName) != def.TTLAttribute {
				t.Errorf("%s: TTL %+v, %v; want enabled on %s", *d.TableName, ttl, err, def.TTLAttribute)
			}
		}
	}
	if got := len(dynamo.AuditTable("x").GlobalSecondaryIndexes); got != 6 {
		t.Errorf("audit table has %d indexes, want 6 (by-appended among them)", got)
	}
}
