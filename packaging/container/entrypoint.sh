#!/bin/sh
# entrypoint.sh - the cutover image's entrypoint: make the task repo on a
# fresh (empty) volume a bare git repo on branch main, then run cutover
# with the container's arguments (default: serve).  A volume that already
# holds a repo, or anything else, is left as it is.
set -eu
repo=${CUTOVER_GIT_REPO:-/srv/tasks.git}
case "$repo" in
*://*) ;; # a remote URL: nothing to create here
*)
	if [ -d "$repo" ] && [ -z "$(ls -A "$repo")" ]; then
		git init --quiet --bare --initial-branch=main "$repo"
		echo "cutover-entrypoint: created an empty bare repo in $repo" >&2
	fi
	;;
esac
exec cutover "$@"
