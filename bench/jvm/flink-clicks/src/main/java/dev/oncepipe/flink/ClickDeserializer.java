package dev.oncepipe.flink;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.oncepipe.avro.SchemaCatalog;
import dev.oncepipe.avro.SingleObjectDecoder;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.apache.avro.generic.GenericRecord;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Kafka record to {@link Click} with the shared decoder of oncepipe's Avro single-object
 * encoding. A value that does not decode fails the job with the decoder's message (no silent drop).
 */
final class ClickDeserializer implements KafkaRecordDeserializationSchema<Click> {

    private static final long serialVersionUID = 1L;
    private final String schemasDir;
    private transient SingleObjectDecoder decoder;
    private transient ObjectMapper json;

    ClickDeserializer(String schemasDir) {
        this.schemasDir = schemasDir;
    }

    @Override
    public void open(DeserializationSchema.InitializationContext context) {
        decoder = new SingleObjectDecoder(SchemaCatalog.load(Path.of(schemasDir)));
        json = new ObjectMapper();
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Click> out) {
        GenericRecord value = decoder.decode(record.value());
        Click click = new Click();
        click.eventId = value.get("event_id").toString();
        click.userId = value.get("user_id").toString();
        click.itemId = value.get("item_id").toString();
        click.action = value.get("action").toString();
        click.occurredAtMillis = (Long) value.get("occurred_at");
        click.sessionId = value.get("session_id").toString();
        click.surface = value.get("surface").toString();
        click.contextJson = contextJson(value.get("context"));
        click.topic = record.topic();
        click.partition = record.partition();
        click.offset = record.offset();
        out.collect(click);
    }

    private String contextJson(Object context) {
        if (context == null) {
            return null;
        }
        Map<String, String> plain = new TreeMap<>();
        ((Map<?, ?>) context).forEach((k, v) -> plain.put(k.toString(), v.toString()));
        try {
            return json.writeValueAsString(plain);
        }
        catch (JsonProcessingException e) {
            throw new IllegalStateException("context of a click does not serialize to JSON", e);
        }
    }

    @Override
    public TypeInformation<Click> getProducedType() {
        return TypeInformation.of(Click.class);
    }
}
