package message

// The idempotency keys of the messages about one plan. A deployment may be planned more than
// once (its reviewed plan went stale and was made again), so what concerns one plan is keyed by
// the deployment and the plan: the first 16 hex digits of the plan's hash.

// PlannedAgainKey is the key of the deployment.planned announcing a plan made again for review.
func PlannedAgainKey(p DeploymentPlanned) string {
	return TypeDeploymentPlanned + ":" + p.DeploymentID + "@" + planID(p)
}

// ApprovalKey is the key of the deployment.approved that approves plan p.
func ApprovalKey(p DeploymentPlanned) string {
	return TypeDeploymentApproved + ":" + p.DeploymentID + "@" + planID(p)
}

func planID(p DeploymentPlanned) string { return p.PlanHash[:min(16, len(p.PlanHash))] }
