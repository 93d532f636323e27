# The three tables of shared/dynamo/tables.go (Definitions), one to one, named as
# dynamo.DefaultTableNames(<prefix>) names them: <prefix>-audit, <prefix>-change-sets,
# <prefix>-seen. All on-demand with point-in-time recovery; encryption at rest is DynamoDB's
# default (an AWS owned key), as the code's doc comment says. The functions get the names in
# KARMA_AUDIT_TABLE, KARMA_CHANGE_SET_TABLE and KARMA_IDEMPOTENCY_TABLE (cmd/lambda's defaults,
# karma-audit/karma-change-sets/karma-idempotency, are never relied on).

# AuditTable: key pk/sk; one index per entry of dynamo.AuditIndexes, each keyed by its partition
# attribute and occurred_at, and by-appended (append_shard, appended), all projecting ALL
# (docs/audit.md).
resource "aws_dynamodb_table" "audit" {
  name                        = "${local.prefix}-audit"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = true

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  attribute {
    name = "occurred_at"
    type = "S"
  }
  attribute {
    name = "deployment_id"
    type = "S"
  }
  attribute {
    name = "correlation_id"
    type = "S"
  }
  attribute {
    name = "component"
    type = "S"
  }
  attribute {
    name = "actor"
    type = "S"
  }
  attribute {
    name = "day_shard"
    type = "S"
  }
  attribute {
    name = "append_shard"
    type = "S"
  }
  attribute {
    name = "appended"
    type = "N"
  }

  global_secondary_index {
    name            = "by-deployment"
    hash_key        = "deployment_id"
    range_key       = "occurred_at"
    projection_type = "ALL"
  }
  global_secondary_index {
    name            = "by-correlation"
    hash_key        = "correlation_id"
    range_key       = "occurred_at"
    projection_type = "ALL"
  }
  global_secondary_index {
    name            = "by-component"
    hash_key        = "component"
    range_key       = "occurred_at"
    projection_type = "ALL"
  }
  global_secondary_index {
    name            = "by-actor"
    hash_key        = "actor"
    range_key       = "occurred_at"
    projection_type = "ALL"
  }
  global_secondary_index {
    name            = "by-day"
    hash_key        = "day_shard"
    range_key       = "occurred_at"
    projection_type = "ALL"
  }
  # The append order (dynamo.IndexAppended): what GET /log reads after a question's first page,
  # to catch up with records appended late.
  global_secondary_index {
    name            = "by-appended"
    hash_key        = "append_shard"
    range_key       = "appended"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }
}

# ChangeSetsTable: key id; index by-created (kind, created). Its projection is KEYS_ONLY in the
# code, not ALL: List queries the index for ids and reads the documents with BatchGetItem.
resource "aws_dynamodb_table" "change_sets" {
  name                        = "${local.prefix}-change-sets"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = true

  attribute {
    name = "id"
    type = "S"
  }
  attribute {
    name = "kind"
    type = "S"
  }
  attribute {
    name = "created"
    type = "S"
  }

  global_secondary_index {
    name            = "by-created"
    hash_key        = "kind"
    range_key       = "created"
    projection_type = "KEYS_ONLY"
  }

  point_in_time_recovery {
    enabled = true
  }
}

# SeenTable: the idempotency records (claims and done markers); key pk; DynamoDB's TTL deletes
# expired items by the "ttl" attribute (unix seconds).
resource "aws_dynamodb_table" "seen" {
  name                        = "${local.prefix}-seen"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  deletion_protection_enabled = true

  attribute {
    name = "pk"
    type = "S"
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }
}
