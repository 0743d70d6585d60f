package dev.oncepipe.flink;

import java.time.Duration;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Keyed by event_id: passes the first record of an event and drops its repeats while the key's
 * state lives (TTL from the last write). A repeat that arrives after the TTL passes again: the
 * TTL is this job's dedupe window, as the inbox's retention is oncepipe's.
 */
final class FirstSeen extends KeyedProcessFunction<String, Click, Click> {

    private static final long serialVersionUID = 1L;
    private final Duration ttl;
    private transient ValueState<Boolean> seen;

    FirstSeen(Duration ttl) {
        this.ttl = ttl;
    }

    @Override
    public void open(OpenContext context) {
        ValueStateDescriptor<Boolean> descriptor = new ValueStateDescriptor<>("seen", Boolean.class);
        descriptor.enableTimeToLive(StateTtlConfig.newBuilder(ttl)
                .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .build());
        seen = getRuntimeContext().getState(descriptor);
    }

    @Override
    public void processElement(Click click, Context context, Collector<Click> out) throws Exception {
        if (seen.value() == null) {
            seen.update(Boolean.TRUE);
            out.collect(click);
        }
    }
}
