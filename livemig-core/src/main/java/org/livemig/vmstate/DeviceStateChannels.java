package org.livemig.vmstate;

import java.io.IOException;
import org.livemig.stream.MultifdPacket;

/**
 * The multifd channels as a source's handlers see them at the switchover (QEMU 10's
 * multifd_queue_device_state): each payload becomes one device-state packet on the next idle
 * channel, written by that channel's thread.
 */
public interface DeviceStateChannels {
    /** Called without the BQL on the migration thread; waits for an idle channel. */
    void queue(String idstr, int instanceId, MultifdPacket.DeviceStatePayload payload) throws IOException;

    /** How many channels there are. */
    int channels();
}
