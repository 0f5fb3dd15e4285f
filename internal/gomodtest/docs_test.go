package gomodtest

import "testing"

// The pages whose Go a reader copies into a project of their own, and the SDK module that project
// would require.

func TestBusinessDoc(t *testing.T) { CheckDoc(t, "business.md", "sdk/business") }

func TestPluginsDoc(t *testing.T) { CheckDoc(t, "plugins.md", "sdk/stage") }
