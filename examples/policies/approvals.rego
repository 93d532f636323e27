# Which config keys need an approval: in prod, changing (or removing) a VPC's address range or a
# DNS zone's name is reviewed by people, even when the change asked for auto-approve. Setting
# them the first time (the component's first deployment) is not.
package karma

reviewed_keys := {
	"vpc": {"cidr"},
	"route53-zone": {"zone_name"},
}

require_approval contains msg if {
	input.change.env == "prod"
	some change in input.diff
	change.op in {"change", "remove"}
	change.key in reviewed_keys[input.component.type]
	msg := sprintf("%s: %s %s (was %v) is reviewed by people", [input.component.id, change.key, change.op, change.before])
}
