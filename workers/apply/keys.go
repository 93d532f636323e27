package apply

import "github.com/usekarma/karma/shared/message"

// The idempotency keys of the messages about a plan reviewed again: message.PlannedAgainKey and
// message.ApprovalKey (shared with the approval step, changeset.Approve).

// ReplannedKey is the key of the deployment.planned announcing a plan made again for review.
func ReplannedKey(p message.DeploymentPlanned) string { return message.PlannedAgainKey(p) }

// ApprovalKey is the key of the deployment.approved that approves plan p.
func ApprovalKey(p message.DeploymentPlanned) string { return message.ApprovalKey(p) }
