# Who may change which component: prod's public web site belongs to the web team. A change that
# touches it (as a root: its own files changed, or a change request names it) must be authored
# by one of them — the commit's author and, for a push, the author of every commit of the push:
# a push deploys each of its commits, and one written by someone else is not made the web
# team's by a commit of theirs on top. A change request must also be asked by one of them: its
# author is whoever the request names (POST /request-change's requested_by), which any caller
# may set, while its actor is the caller the API authenticated (token name, IAM ARN) or the
# CLI's user. A change made in Parameter Store passes (it has no author: Parameter Store's own
# access rules apply). A redeploy caused by an upstream passes while it deploys the config the
# site runs: one that would deploy another — a change of the site's that was never deployed
# (denied here, rejected, expired, failed) and that is still in the tree it is built from — is
# denied, or that change would go out under whoever changed the upstream. It deploys as a change
# of the site itself, by the web team.
package karma

web_owners := {"ada@example.com"}

# web_callers: the web team as Karma's API and CLI name them (token names, IAM ARNs, logins),
# lower-cased; an email address of web_owners counts too.
web_callers := {"ada"}

# authors: who wrote what the change deploys.
authors contains input.change.author

authors contains a if some a in input.change.push_authors

deny contains msg if {
	input.stage == "resolve"
	input.component.root
	input.component.type == "serverless-site"
	input.change.env == "prod"
	input.change.source in {"git", "request"}
	some author in authors
	not web_owners[email(author)]
	msg := sprintf("%s belongs to the web team (%s): %s may not change it", [input.component.id, concat(", ", sort(web_owners)), author])
}

deny contains msg if {
	input.stage == "resolve"
	input.component.root
	input.component.type == "serverless-site"
	input.change.env == "prod"
	input.change.source == "request"
	not web_caller(input.change.actor.name)
	msg := sprintf("%s belongs to the web team (%s): %s may not request a change of it", [input.component.id, concat(", ", sort(web_owners)), input.change.actor.name])
}

deny contains msg if {
	input.stage == "resolve"
	not input.component.root
	input.component.type == "serverless-site"
	input.change.env == "prod"
	changed := sort([d.key | some d in input.diff])
	count(changed) > 0
	msg := sprintf("%s belongs to the web team (%s): a redeploy for its upstreams would deploy a change of its config not deployed before (%s), which only a change of the site by the web team deploys", [input.component.id, concat(", ", sort(web_owners)), concat(", ", changed)])
}

web_caller(name) if web_callers[lower(name)]

web_caller(name) if web_owners[email(name)]

# email is the address of "Name <address>", or the string itself, lower-cased.
email(author) := lower(trim_suffix(split(author, "<")[1], ">")) if contains(author, "<")

email(author) := lower(author) if not contains(author, "<")
