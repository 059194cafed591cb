package org.livemig.vmstate;

/**
 * What an outgoing migration tells its handlers before it starts ({@link SaveVmHandlers#savePrepare}).
 *
 * @param switchoverAck the {@code switchover-ack} capability: the destination approves the switchover
 * @param multifd       the multifd channels for device state at the switchover, or null without multifd
 */
public record SaveOptions(boolean switchoverAck, DeviceStateChannels multifd) {
    /** A migration without switchover-ack or multifd (a snapshot). */
    public static final SaveOptions PLAIN = new SaveOptions(false, null);
}
