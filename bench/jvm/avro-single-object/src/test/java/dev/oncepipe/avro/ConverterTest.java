package dev.oncepipe.avro;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.oncepipe.avro.connect.AvroSingleObjectConverter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.Map;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.data.Timestamp;
import org.apache.kafka.connect.errors.DataException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The converter reads what oncepipe's Python codec wrote (src/test/resources, make_fixture.py). */
class ConverterTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String SCHEMAS = System.getProperty("oncepipe.schemas.dir");

    private static JsonNode cases() throws IOException {
        try (InputStream in = ConverterTest.class.getResourceAsStream("/oncepipe-values.json")) {
            return JSON.readTree(in);
        }
    }

    private static AvroSingleObjectConverter converter(String mapFormat, String dir) {
        AvroSingleObjectConverter converter = new AvroSingleObjectConverter();
        converter.configure(Map.of(AvroSingleObjectConverter.SCHEMAS_DIR, dir,
                AvroSingleObjectConverter.MAP_FORMAT, mapFormat), false);
        return converter;
    }

    private static byte[] value(JsonNode testCase) {
        return HexFormat.of().parseHex(testCase.get("value_hex").asText());
    }

    @Test
    void decodesEveryFixtureValueIntoTheNewestClickEventShape() throws IOException {
        AvroSingleObjectConverter converter = converter("map", SCHEMAS);
        for (JsonNode testCase : cases()) {
            SchemaAndValue decoded = converter.toConnectData("clicks", value(testCase));
            Struct struct = (Struct) decoded.value();
            JsonNode expected = testCase.get("expected");
            String name = testCase.get("name").asText();
            assertEquals("oncepipe.events.ClickEvent", decoded.schema().name(), name);
            for (String field : new String[]{"event_id", "user_id", "item_id", "action", "session_id", "surface"}) {
                assertEquals(expected.get(field).asText(), struct.getString(field), name + ": " + field);
            }
            assertEquals(Timestamp.LOGICAL_NAME, decoded.schema().field("occurred_at").schema().name());
            assertEquals(expected.get("occurred_at").asLong(),
                    ((java.util.Date) struct.get("occurred_at")).getTime(), name);
            assertTrue(decoded.schema().field("context").schema().isOptional());
            JsonNode context = expected.get("context");
            if (context.isNull()) {
                assertNull(struct.get("context"), name);
            }
            else {
                Map<String, String> want = new HashMap<>();
                context.fields().forEachRemaining(e -> want.put(e.getKey(), e.getValue().asText()));
                assertEquals(want, struct.getMap("context"), name);
            }
        }
    }

    @Test
    void mapsCanBeJsonTextForSinksWithoutAMapType() throws IOException {
        AvroSingleObjectConverter converter = converter("json", SCHEMAS);
        JsonNode first = cases().get(0);
        SchemaAndValue decoded = converter.toConnectData("clicks", value(first));
        assertEquals(Schema.Type.STRING, decoded.schema().field("context").schema().type());
        String text = ((Struct) decoded.value()).getString("context");
        assertEquals(first.get("expected").get("context"), JSON.readTree(text));
    }

    @Test
    void refusesBadMagicNamingWhatItFound() throws IOException {
        byte[] bad = value(cases().get(0));
        bad[0] = 0x00;
        DataException error = assertThrows(DataException.class,
                () -> converter("map", SCHEMAS).toConnectData("clicks", bad));
        assertTrue(error.getMessage().contains("not Avro single-object encoding"), error.getMessage());
        assertTrue(error.getMessage().contains("topic clicks"), error.getMessage());
        DataException tooShort = assertThrows(DataException.class,
                () -> converter("map", SCHEMAS).toConnectData("clicks", new byte[]{(byte) 0xC3, 0x01, 0x02}));
        assertTrue(tooShort.getMessage().contains("3 bytes"), tooShort.getMessage());
    }

    @Test
    void refusesAnUnknownFingerprintNamingItAndTheFolder(@TempDir Path onlyV2) throws IOException {
        // A folder holding the newest version only cannot read the version-1 fixture value.
        try (var files = Files.list(Path.of(SCHEMAS))) {
            Iterator<Path> it = files.iterator();
            while (it.hasNext()) {
                Path file = it.next();
                if (file.getFileName().toString().endsWith(".v2.avsc")) {
                    Files.copy(file, onlyV2.resolve(file.getFileName()));
                }
            }
        }
        byte[] v1 = value(cases().get(2));
        String fingerprint = HexFormat.of().formatHex(v1, 2, 10);
        DataException error = assertThrows(DataException.class,
                () -> converter("map", onlyV2.toString()).toConnectData("clicks", v1));
        assertTrue(error.getMessage().contains("unknown writer schema fingerprint " + fingerprint), error.getMessage());
        assertTrue(error.getMessage().contains(onlyV2.toString()), error.getMessage());
    }

    @Test
    void refusesATruncatedBody() throws IOException {
        byte[] whole = value(cases().get(0));
        byte[] cut = java.util.Arrays.copyOf(whole, 20);
        DataException error = assertThrows(DataException.class,
                () -> converter("map", SCHEMAS).toConnectData("clicks", cut));
        assertTrue(error.getMessage().contains("is not a oncepipe.events.ClickEvent"), error.getMessage());
    }

    @Test
    void aNullValueIsATombstoneAndAMissingFolderIsAConfigError(@TempDir Path empty) {
        assertEquals(SchemaAndValue.NULL, converter("map", SCHEMAS).toConnectData("clicks", null));
        ConfigException error = assertThrows(ConfigException.class,
                () -> converter("map", empty.resolve("nowhere").toString()));
        assertTrue(error.getMessage().contains("does not exist"), error.getMessage());
    }
}
