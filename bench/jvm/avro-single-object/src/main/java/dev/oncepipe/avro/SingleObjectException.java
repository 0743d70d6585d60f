package dev.oncepipe.avro;

/** Bytes that are not an Avro single-object encoded value of a known writer schema; the message says why. */
public final class SingleObjectException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    /** A value refused for {@code message}. */
    public SingleObjectException(String message) {
        super(message);
    }

    /** A value refused for {@code message}, caused by {@code cause}. */
    public SingleObjectException(String message, Throwable cause) {
        super(message, cause);
    }
}
