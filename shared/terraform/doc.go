// Package terraform runs one component's Terraform: it builds a root module around the
// component's module, plans it into a saved plan file, and applies exactly that plan.
//
// # Contract
//
// A component "<env>/<type>/<nickname>" is deployed from a [Workspace]: a working directory
// (Root, one per component, e.g. .karma/work/<env>/<type>/<nickname>), the absolute path of
// the component's module (<modules_dir>/<type>), and the component's resolved config with
// every "${<type>/<nickname>.runtime.<key>}" already substituted (model.InterpolateRuntimes).
//
//   - [Prepare] writes Root/main.tf (a local backend whose state is Root/terraform.tfstate, one
//     `module "component"` call passing component_name, nickname, iac_prefix and config, and one
//     output "runtime" holding the module's outputs) and Root/config.json. Files are rewritten
//     only when their content changes, so `terraform init` runs only when needed. Any other
//     file of Root terraform would read as configuration or variables (.tf, .tf.json,
//     terraform.tfvars, *.auto.tfvars) is removed: the root module is main.tf alone. Terraform
//     state therefore lives per env/type/nickname in Root and nowhere else.
//   - Values named in Workspace.Sensitive (taken from SecureString parameters) are never written
//     to those files: they are sensitive input variables, passed in a 0600 -var-file that exists
//     only while `terraform plan` runs, and scrubbed from the log an [*Error] keeps
//     (sensitive.go). Saved plans, which Terraform fills with variable values, are 0600 in a
//     0700 directory, and kept only while they may still be applied: Plan, Apply and Refresh
//     first remove those made from another state than Root's and those whose deployment
//     (Workspace.Owner, recorded next to the plan) Workspace.Spent says is over; [SweepPlans]
//     does the same in every workspace of a work directory (prune.go).
//   - [Runner.Plan] prepares, initialises when needed (never upgrades, never reconfigures —
//     which would empty the state —, never migrates or prompts; with the module's own
//     .terraform.lock.hcl, when it has one, copied into Root and read-only: lockfile.go,
//     [ErrProviderLock]), refuses with
//     [ErrModuleOutside] a module terraform installed from outside Workspace.Confine, the
//     commit's modules folder (a local source leaving it, an absolute path, a file:// URL: the
//     disk, not the commit; modulesources.go), runs `terraform plan -out`, counts the saved plan's resource changes into a
//     message.PlanSummary (a replacement counts as one add and one destroy) and returns the plan
//     file with its sha256. Next to the plan (<plan>.config.json) it keeps the config.json the
//     plan was made with. Terraform reads the workspace's own copy of the commit's modules
//     folder (Root/.karma-modules/<tree id>, checked to hash to the tree id; commitmodules.go),
//     never the folder configrepo shares: what a module writes under path.module stays in its
//     workspace. Next to the plan (<plan>.modules) Plan records what the copy held once planned,
//     and Apply refuses (ErrPlanChanged) a plan whose copy changed since.
//   - [Runner.Apply] applies exactly the reviewed plan: the plan file must be one of the
//     workspace's own (in Root/plans: terraform applies a plan to the state its backend names,
//     which for a plan of another Root is that Root's), must still hash to
//     PlanResult.PlanHash, and must have been made from the current state — the serial and
//     lineage the plan records, compared as terraform compares them (stale.go) — else
//     [ErrPlanChanged] and terraform does not run: the caller plans again. Terraform evaluates
//     the plan's configuration again while applying, reading config.json as Root holds it then
//     (another plan or a refresh of Root may have rewritten it): Apply puts back the one the
//     plan was made with first (a plan without it is ErrPlanChanged too). The plan last applied
//     in Root, given again while the state is still the one its apply left (its caller lost the
//     outcome), returns that apply's outputs without running terraform (stale.go) — also when
//     its context ended after terraform reported the apply complete and exited 0 (that call
//     fails as interrupted; the plan is recorded applied). It returns the
//     module's outputs as top-level keys ([Outputs]), which the caller publishes as the
//     component's runtime.
//   - [TFExec.PlanResources] (a [PlanLister]) lists every resource change of a saved plan —
//     address and actions, none left out, unlike PlanResult.Resources — from the plan file as
//     Apply checks it (one of Root's, hashing to PlanHash; else ErrPlanChanged): the policies
//     asked before a plan is applied see all of them (planresources.go).
//   - [TFExec.Refresh] (a [Refresher]; the drift check) runs `terraform plan -refresh-only` in a
//     workspace that has a state, prepared as Plan prepares it, and reports the resources
//     terraform found changed outside it (resource_drift) and the module outputs the refreshed
//     values change, by name; the plan is never applied and is removed (refresh.go).
//   - A Root whose terraform.tfstate is empty while terraform.tfstate.backup holds a state (what
//     an init with -reconfigure, which Karma ran before, left) is neither planned nor applied:
//     every resource would be created again; the error names both files (stale.go). Nor is a
//     Root holding errored.tfstate (terraform applied but could not save the state, and wrote
//     it there): the error names it and says to push it (`terraform state push`).
//   - Plan, Apply and Refresh on one Root never overlap: each holds an exclusive lock on
//     Root/.karma.lock (flock) while terraform runs, in this process or any other.
//   - A Root is one component's: the first Plan, Apply or Refresh records its id in
//     Root/.karma-component, and a Root recording another component is refused before terraform
//     runs — on a file system that ignores case, prod/vpc/Core and prod/vpc/core (two
//     components for Git and Parameter Store) would otherwise share one folder and one state
//     (owner.go).
//   - A context's deadline interrupts terraform ahead of it by TFExec.GracePeriod (a quarter of
//     the time left when that is less), so that terraform has stopped and written its state by
//     then: a Lambda is frozen at its deadline, terraform with it (stopInTime). A context that
//     ends while terraform starts reaches terraform-exec only once terraform printed, or
//     startGrace later: terraform-exec would return without waiting for it (started.go).
//   - Failures are [*Error] values carrying the step, the component, terraform's own
//     diagnostics (plan and apply run with -json: summary, detail, resource and file of each
//     error, sensitive values scrubbed; diagnostics.go) and the tail of its output as text; a
//     failed apply also lists the resource changes terraform completed before failing (now in
//     the state) and those it failed, from its apply_complete and apply_errored events.
//     [Error.Permanent] tells a retrying caller whether trying again can
//     help: false for context cancellation or deadline and for a commit's modules folder found
//     changed on disk before terraform ran (ErrModulesChanged), true for terraform failures
//     (invalid config, failed apply, a changed plan). Outcomes are decided from exit codes and
//     JSON, never from terraform's human-readable text.
//
// [TFExec] is the real runner (hashicorp/terraform-exec driving the terraform binary found
// by [FindTerraform]). [Noop] runs no terraform at all: it fakes plans and derives outputs
// from the config, for benchmarks and fast tests only.
package terraform
