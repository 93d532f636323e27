package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// API is the part of the DynamoDB client the stores use; *dynamodb.Client implements it.
type API interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// NewClient loads the default AWS configuration (environment, shared config files, SSO,
// instance roles; optFns adjust it, e.g. config.WithRegion) and returns a DynamoDB client. A
// non-empty endpoint overrides the DynamoDB endpoint (DynamoDB Local); when it is empty the SDK
// applies AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL and the shared config's endpoint_url.
// Throttling, 5xx and connection errors are retried by the SDK's standard retryer (3 attempts;
// raise with config.WithRetryMaxAttempts) before the stores see them.
func NewClient(ctx context.Context, endpoint string, optFns ...func(*config.LoadOptions) error) (*dynamodb.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return nil, fmt.Errorf("dynamo: load AWS config: %w", err)
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// TableNames names the three tables. DefaultTableNames derives them from one prefix.
type TableNames struct {
	Audit      string // the audit log (AuditLog)
	ChangeSets string // change set state (ChangeSets)
	Seen       string // idempotency claims and done markers (Seen)
}

// DefaultTableNames is <prefix>-audit, <prefix>-change-sets and <prefix>-seen.
func DefaultTableNames(prefix string) TableNames {
	return TableNames{Audit: prefix + "-audit", ChangeSets: prefix + "-change-sets", Seen: prefix + "-seen"}
}

// TableDefinition is one table as CreateTables makes it: the CreateTable request, and the
// settings DynamoDB takes in separate calls after creation.
type TableDefinition struct {
	Create *dynamodb.CreateTableInput
	// PointInTimeRecovery enables continuous backups (restore to any second of the last 35
	// days): UpdateContinuousBackups; Terraform: point_in_time_recovery { enabled = true }.
	PointInTimeRecovery bool
	// TTLAttribute, when set, is the attribute DynamoDB's TTL deletes expired items by
	// (UpdateTimeToLive; Terraform: ttl { attribute_name = ..., enabled = true }).
	TTLAttribute string
}

// Definitions returns the three tables. They are the source of truth for the Terraform module
// that creates them in AWS, which mirrors them one to one, e.g. for the audit table:
//
//	resource "aws_dynamodb_table" "audit" {
//	  name                        = "${var.prefix}-audit"
//	  billing_mode                = "PAY_PER_REQUEST"
//	  hash_key                    = "pk"
//	  range_key                   = "sk"
//	  deletion_protection_enabled = true
//	  # one attribute block per key attribute: pk, sk, occurred_at, each index's hash key,
//	  # append_shard and appended (type N)
//	  attribute {
//	    name = "pk"
//	    type = "S"
//	  }
//	  # one block per entry of AuditIndexes, all with range_key occurred_at
//	  global_secondary_index {
//	    name            = "by-deployment"
//	    hash_key        = "deployment_id"
//	    range_key       = "occurred_at"
//	    projection_type = "ALL"
//	  }
//	  # and the append order (append_shard S, appended N)
//	  global_secondary_index {
//	    name            = "by-appended"
//	    hash_key        = "append_shard"
//	    range_key       = "appended"
//	    projection_type = "ALL"
//	  }
//	  point_in_time_recovery {
//	    enabled = true
//	  }
//	}
//
// The change set table: hash_key "id"; index "by-created" (hash_key "kind", range_key
// "created", projection KEYS_ONLY). The idempotency table: hash_key "pk"; ttl { attribute_name
// = "ttl", enabled = true }. All three on-demand, with point-in-time recovery. Encryption at
// rest is DynamoDB's default (an AWS owned key); add server_side_encryption with a customer
// managed KMS key where policy asks for one.
func Definitions(names TableNames) []TableDefinition {
	return []TableDefinition{
		{Create: AuditTable(names.Audit), PointInTimeRecovery: true},
		{Create: ChangeSetsTable(names.ChangeSets), PointInTimeRecovery: true},
		{Create: SeenTable(names.Seen), PointInTimeRecovery: true, TTLAttribute: attrTTL},
	}
}

// AuditIndexes are the audit table's global secondary indexes, each answering one auditor
// question with one Query: index name -> partition key attribute. Every one sorts by
// occurred_at and projects ALL attributes, so a page of results needs no further reads.
var AuditIndexes = []struct{ Name, PartitionKey string }{
	{IndexDeployment, attrDeployment},
	{IndexCorrelation, attrCorrelation},
	{IndexComponent, attrComponent},
	{IndexActor, attrActor},
	{IndexDay, attrDayShard},
}

// AuditTable is the audit table's definition (key schema: see AuditLog): the AuditIndexes, and
// IndexAppended (partition key append_shard, sort key appended, a number; projection ALL).
func AuditTable(name string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrOccurredAt), AttributeType: types.ScalarAttributeTypeS},
		},
	}
	in.AttributeDefinitions = append(in.AttributeDefinitions,
		types.AttributeDefinition{AttributeName: aws.String(attrAppendShard), AttributeType: types.ScalarAttributeTypeS},
		types.AttributeDefinition{AttributeName: aws.String(attrAppended), AttributeType: types.ScalarAttributeTypeN})
	in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
		IndexName: aws.String(IndexAppended),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrAppendShard), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrAppended), KeyType: types.KeyTypeRange},
		},
		Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
	})
	for _, ix := range AuditIndexes {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(ix.PartitionKey), AttributeType: types.ScalarAttributeTypeS})
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName: aws.String(ix.Name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(ix.PartitionKey), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(attrOccurredAt), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		})
	}
	return in
}

// ChangeSetsTable is the change set table's definition (see ChangeSets).
func ChangeSetsTable(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		KeySchema:   []types.KeySchemaElement{{AttributeName: aws.String(attrID), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrID), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrKind), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrCreated), AttributeType: types.ScalarAttributeTypeS},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(IndexCreated),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(attrKind), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(attrCreated), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
	}
}

// SeenTable is the idempotency table's definition (see Seen).
func SeenTable(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS}},
	}
}

// CreateTables creates the tables of names that do not exist (an existing table is left as it
// is), waits until they are active, and enables point-in-time recovery and TTL as Definitions
// say (DynamoDB Local does not implement point-in-time recovery: there it is skipped). Tests
// use it; production tables come from Terraform mirroring Definitions.
func CreateTables(ctx context.Context, client *dynamodb.Client, names TableNames) error {
	defs := Definitions(names)
	for _, d := range defs {
		if _, err := client.CreateTable(ctx, d.Create); err != nil {
			var inUse *types.ResourceInUseException
			if !errors.As(err, &inUse) {
				return wrap("create table", aws.ToString(d.Create.TableName), "", err)
			}
		}
	}
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 2*time.Second
	})
	for _, d := range defs {
		name := aws.ToString(d.Create.TableName)
		if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 5*time.Minute); err != nil {
			return wrap("wait for table", name, "", err)
		}
		if d.PointInTimeRecovery {
			_, err := client.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
				TableName: aws.String(name),
				PointInTimeRecoverySpecification: &types.PointInTimeRecoverySpecification{
					PointInTimeRecoveryEnabled: aws.Bool(true)},
			})
			if err != nil && !unknownOperation(err) {
				return wrap("enable point-in-time recovery", name, "", err)
			}
		}
		if d.TTLAttribute != "" {
			_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
				TableName: aws.String(name),
				TimeToLiveSpecification: &types.TimeToLiveSpecification{
					AttributeName: aws.String(d.TTLAttribute), Enabled: aws.Bool(true)},
			})
			// Enabling TTL twice is refused ("TimeToLive is already enabled"): that is fine.
			if err != nil && !ttlAlreadyEnabled(ctx, client, name, d.TTLAttribute) {
				return wrap("enable TTL", name, "", err)
			}
		}
	}
	return nil
}

// unknownOperation reports an endpoint that does not implement an operation: DynamoDB Local
// has no continuous backups (UpdateContinuousBackups), which real DynamoDB always has.
func unknownOperation(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "UnknownOperationException"
}

func ttlAlreadyEnabled(ctx context.Context, client *dynamodb.Client, table, attr string) bool {
	out, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil || out.TimeToLiveDescription == nil {
		return false
	}
	d := out.TimeToLiveDescription
	return aws.ToString(d.AttributeName) == attr &&
		(d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling)
}

// DeleteTables deletes the tables of names; missing ones are not an error. For tests.
func DeleteTables(ctx context.Context, client *dynamodb.Client, names TableNames) error {
	var errs []error
	for _, name := range []string{names.Audit, names.ChangeSets, names.Seen} {
		if name == "" {
			continue
		}
		_, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		var nf *types.ResourceNotFoundException
		if err != nil && !errors.As(err, &nf) {
			errs = append(errs, wrap("delete table", name, "", err))
		}
	}
	return errors.Join(errs...)
}
