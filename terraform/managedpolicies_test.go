package terraform

import (
	"fmt"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// iamManagedPoliciesPerRole is IAM's default quota of managed policies attached to a role
// ("Managed policies attached to an IAM role", IAM quotas); karmaManagedPolicies is what the
// module attaches to every function's role itself: aws_iam_policy.guard and aws_iam_policy.queues.
const (
	iamManagedPoliciesPerRole = 10
	karmaManagedPolicies      = 2
)

// TestPolicyArnsFitTheManagedPolicyQuota: plan_policy_arns and apply_policy_arns are attached to
// roles that already carry Karma's own managed policies; a list IAM cannot attach must be refused
// at plan with a message, not half-way through apply.
func TestPolicyArnsFitTheManagedPolicyQuota(t *testing.T) {
	t.Parallel()
	dir := moduleDir()
	for _, name := range []string{"plan_policy_arns", "apply_policy_arns"} {
		n, _ := longestAccepted(t, dir, testVars(), name, func(n int) cty.Value {
			l := make([]cty.Value, n)
			for i := range l {
				l[i] = cty.StringVal(fmt.Sprintf("arn:aws:iam::123456789012:policy/p%d", i))
			}
			return cty.ListVal(l)
		})
		if n+karmaManagedPolicies > iamManagedPoliciesPerRole {
			t.Errorf("variable %s accepts %d policies: with Karma's %d a role would have %d managed policies, IAM attaches at most %d", name, n, karmaManagedPolicies, n+karmaManagedPolicies, iamManagedPoliciesPerRole)
		}
	}
}
