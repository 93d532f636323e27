# Destroys always need an approval: a component whose config.json was removed, and a plan that
# deletes or replaces a resource. (Karma holds destroying plans for people's approval by itself;
# the policy says so in the record, with the addresses.)
package karma

require_approval contains msg if {
	input.component.destroy
	msg := sprintf("%s is removed from the repository: destroying it needs an approval", [input.component.id])
}

require_approval contains msg if {
	input.stage == "apply"
	some r in input.plan.resources
	"delete" in r.actions
	msg := sprintf("%s: the plan deletes %s", [input.component.id, r.address])
}
