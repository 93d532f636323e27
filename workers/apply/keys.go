package apply

import "github.com/usekarma/karma/shared/message"

// The idempotency keys of the messages about a plan reviewed again. A deployment may be planned
// more than once (its reviewed plan went stale), so what concerns one plan is keyed by the
// deployment and the plan: the first 16 hex digits of the plan's hash.

// ReplannedKey is the key of the deployment.planned announcing a plan made again for review.
func ReplannedKey(p message.DeploymentPlanned) string {
	return "deployment.planned:" + p.DeploymentID + "@" + planID(p)
}

// ApprovalKey is the key of the deployment.approved that approves plan p.
func ApprovalKey(p message.DeploymentPlanned) string {
	return "deployment.approved:" + p.DeploymentID + "@" + planID(p)
}

func planID(p message.DeploymentPlanned) string { return p.PlanHash[:min(16, len(p.PlanHash))] }
