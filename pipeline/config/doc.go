// Package config loads and validates the per-app pipeline YAML: the ordered list of stages the
// state server runs each device signal through, one file per app ID in a directory
// (configs/pipelines/ by default), plus default.yaml for app IDs without a file of their own.
//
// A file looks like this (every key is documented on Stage, with its default):
//
//	version: 1
//	stages:
//	  - name: auth
//	    plugin: auth              # a binary under the plugin dir, or builtin:<name>
//	    signals: [login, uplink]
//	    timeout: 200ms
//	    on_failure: fail_closed
//	    config: {token_secret_env: PLATO_AUTH__TOKEN_SECRET}
//
// A file may instead say `extends: default` (or another app ID) and change that file's chain by
// stage name: remove, after/before, and same-named stages that override keys (extends.go).
//
// Anchors, aliases and merge keys work as in any YAML; top-level keys starting with "x-" are
// ignored, so that they can hold blocks for stages to merge in (x-common: &common {...}, then
// <<: *common in a stage).
//
// Loading is all-or-nothing and happens before any message uses the result: LoadFile and LoadDir
// return either a fully validated, defaulted plan or every problem found, each an *Error naming
// the file, the line, the key path (stages[1].timeout) and the stage's name, joined with
// errors.Join. Unknown keys are errors, so a typo never silently falls back to a default. Report
// renders such an error for people (`plato pipeline validate`).
//
// The document is parsed by koanf (parsers/yaml); the same bytes are also parsed into a
// yaml.v3 node tree, which supplies line numbers and the checks koanf cannot make (unknown and
// duplicate keys, the shape of each block).
//
// Concurrency: the loaders keep no state and never touch a *File or *Set once returned; treat
// them as read-only and share them between goroutines. Watch calls its callback on its own
// goroutine, one call at a time.
package config
