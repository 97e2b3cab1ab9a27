package ops

import "sync/atomic"

type atomicGauges = atomic.Pointer[Gauges]
