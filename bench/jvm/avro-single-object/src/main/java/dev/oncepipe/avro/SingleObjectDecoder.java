package dev.oncepipe.avro;

import java.io.IOException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.SchemaStore;

/**
 * Decodes Avro single-object encoding ({@code C3 01}, the writer schema's 8-byte CRC-64-AVRO
 * fingerprint, little-endian, then the Avro binary body) with Apache Avro's
 * {@link BinaryMessageDecoder}: the writer schema is found by its fingerprint among every
 * version of the catalog, and the body is resolved into the newest version of its type.
 *
 * <p>Not thread-safe (the decoders reuse buffers): one instance per thread.
 */
public final class SingleObjectDecoder {

    /** Header length: two magic bytes and the 8-byte fingerprint. */
    public static final int HEADER_BYTES = 10;
    private static final byte MAGIC_0 = (byte) 0xC3;
    private static final byte MAGIC_1 = (byte) 0x01;

    private final SchemaCatalog catalog;
    private final Map<String, BinaryMessageDecoder<GenericRecord>> byType = new HashMap<>();

    /** A decoder of every writer schema of {@code catalog}. */
    public SingleObjectDecoder(SchemaCatalog catalog) {
        this.catalog = catalog;
    }

    /** The catalog this decoder reads with. */
    public SchemaCatalog catalog() {
        return catalog;
    }

    /** The fingerprint in a value's header, as oncepipe prints it (16 hex chars, header byte order). */
    public static String fingerprintHex(byte[] value) {
        return HexFormat.of().formatHex(value, 2, HEADER_BYTES);
    }

    /** The writer schema of {@code value}'s header; raises for bad magic or an unknown fingerprint. */
    public Schema writerOf(byte[] value) {
        if (value.length < HEADER_BYTES || value[0] != MAGIC_0 || value[1] != MAGIC_1) {
            int shown = Math.min(value.length, HEADER_BYTES);
            throw new SingleObjectException("not Avro single-object encoding: a value starts with C3 01 and an"
                    + " 8-byte schema fingerprint, this one (" + value.length + " bytes) starts with "
                    + (shown == 0 ? "nothing" : HexFormat.of().formatHex(value, 0, shown))
                    + "; the topic holds values of another format or producer");
        }
        long fingerprint = 0;
        for (int i = HEADER_BYTES - 1; i >= 2; i--) {
            fingerprint = (fingerprint << 8) | (value[i] & 0xFF);
        }
        Schema writer = catalog.writer(fingerprint);
        if (writer == null) {
            throw new SingleObjectException("unknown writer schema fingerprint " + fingerprintHex(value)
                    + ": none of the " + catalog.size() + " schemas in " + catalog.source()
                    + " has it; add the producer's .avsc version to that folder (every version is kept)");
        }
        return writer;
    }

    /** Decode {@code value} into a record of the newest version of its type. */
    public GenericRecord decode(byte[] value) {
        Schema writer = writerOf(value);
        BinaryMessageDecoder<GenericRecord> decoder = byType.computeIfAbsent(writer.getFullName(), this::decoderOf);
        try {
            return decoder.decode(value);
        }
        catch (IOException | AvroRuntimeException e) {
            throw new SingleObjectException("the body after header " + fingerprintHex(value) + " is not a "
                    + writer.getFullName() + " of that schema (" + value.length + " bytes): " + e.getMessage(), e);
        }
    }

    private BinaryMessageDecoder<GenericRecord> decoderOf(String fullName) {
        SchemaStore.Cache store = new SchemaStore.Cache();
        for (Schema version : catalog.versionsOf(fullName)) {
            store.addSchema(version);
        }
        return new BinaryMessageDecoder<>(GenericData.get(), catalog.newest(fullName), store);
    }
}
