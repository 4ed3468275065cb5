//go:build linux

package spawn

// ChildEnv is childEnv for the tests, which run the finisher as Start does.
const ChildEnv = childEnv
