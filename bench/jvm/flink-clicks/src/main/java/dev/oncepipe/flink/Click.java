package dev.oncepipe.flink;

/** One decoded click record with where it was read (a Flink POJO: public fields, no-arg constructor). */
public class Click {
    public String eventId;
    public String userId;
    public String itemId;
    public String action;
    public long occurredAtMillis;
    public String sessionId;
    public String surface;
    /** The context map as JSON, or null. */
    public String contextJson;
    public String topic;
    public int partition;
    public long offset;

    public Click() {
    }
}
