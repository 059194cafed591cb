package org.livemig.transport.tls;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.security.SecureRandom;
import java.util.Arrays;
import java.util.Random;
import org.bouncycastle.jcajce.util.DefaultJcaJceHelper;
import org.bouncycastle.tls.crypto.impl.TlsAEADCipherImpl;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCrypto;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;
import org.bouncycastle.tls.crypto.impl.jcajce.JceAEADCipherImpl;
import org.junit.jupiter.api.Test;

/**
 * Our AES-GCM record adapter for Bouncy Castle's TLS makes the same records as Bouncy Castle's
 * own (each decrypts the other's, in place as the record layer calls it), and a tampered record
 * fails as Bouncy Castle's record layer expects (it sends bad_record_mac).
 */
class JdkGcmTlsCryptoTest {
    private static final String GCM = "AES/GCM/NoPadding";
    private final JcaTlsCrypto bc = new JcaTlsCryptoProvider().create(new SecureRandom());
    private final JdkGcmTlsCrypto ours = (JdkGcmTlsCrypto) JdkGcmTlsCrypto.create(new SecureRandom());
    private final byte[] key = new byte[16];
    private final byte[] nonce = new byte[12];
    private final byte[] aad = {23, 3, 3, 0x40, 0x11};

    JdkGcmTlsCryptoTest() {
        Random r = new Random(16);
        r.nextBytes(key);
        r.nextBytes(nonce);
    }

    private TlsAEADCipherImpl bcCipher(boolean encrypting) throws Exception {
        TlsAEADCipherImpl c = new JceAEADCipherImpl(bc, new DefaultJcaJceHelper(), GCM, "AES", 16, encrypting);
        c.setKey(key, 0, key.length);
        return c;
    }

    private TlsAEADCipherImpl ourCipher(boolean encrypting) throws Exception {
        TlsAEADCipherImpl c = ours.createAEADCipher(GCM, "AES", 16, encrypting);
        c.setKey(key, 0, key.length);
        return c;
    }

    /** A record of {@code len} bytes at offset 5 of a buffer, encrypted in place; returns the buffer, ciphertext length at [0..3]. */
    private static byte[] seal(TlsAEADCipherImpl enc, byte[] nonce, byte[] aad, byte[] plain) throws Exception {
        byte[] buf = new byte[5 + plain.length + 16];
        System.arraycopy(plain, 0, buf, 5, plain.length);
        enc.init(nonce, 16);
        int n = enc.doFinal(aad, buf, 5, plain.length, buf, 5);
        assertThat(n).isEqualTo(plain.length + 16);
        return buf;
    }

    @Test
    void recordsMatchBouncyCastlesOwnAdapterBothWaysInPlace() throws Exception {
        for (int len : new int[] {0, 1, 15, 511, 512, 4096 + 8, 1 << 14}) {
            byte[] plain = new byte[len];
            new Random(len).nextBytes(plain);
            byte[] theirs = seal(bcCipher(true), nonce, aad, plain);
            byte[] mine = seal(ourCipher(true), nonce, aad, plain);
            assertThat(mine).as("ciphertext of %d bytes", len).isEqualTo(theirs);

            TlsAEADCipherImpl dec = ourCipher(false);
            dec.init(nonce, 16);
            assertThat(dec.doFinal(aad, theirs, 5, len + 16, theirs, 5)).isEqualTo(len);
            assertThat(Arrays.copyOfRange(theirs, 5, 5 + len)).isEqualTo(plain);

            TlsAEADCipherImpl bcDec = bcCipher(false);
            bcDec.init(nonce, 16);
            assertThat(bcDec.doFinal(aad, mine, 5, len + 16, mine, 5)).isEqualTo(len);
            assertThat(Arrays.copyOfRange(mine, 5, 5 + len)).isEqualTo(plain);
        }
    }

    @Test
    void oneCipherDecryptsRecordAfterRecordWithFreshNonces() throws Exception {
        TlsAEADCipherImpl enc = ourCipher(true);
        TlsAEADCipherImpl dec = ourCipher(false);
        for (int i = 0; i < 64; i++) {
            byte[] n = nonce.clone();
            n[11] ^= (byte) i;
            byte[] plain = new byte[1000 + i * 250];
            new Random(i).nextBytes(plain);
            byte[] rec = seal(enc, n, aad, plain);
            dec.init(n, 16);
            assertThat(dec.doFinal(aad, rec, 5, plain.length + 16, rec, 5)).isEqualTo(plain.length);
            assertThat(Arrays.copyOfRange(rec, 5, 5 + plain.length)).isEqualTo(plain);
        }
    }

    @Test
    void aTamperedRecordOrWrongHeaderFailsAsBouncyCastleExpects() throws Exception {
        byte[] plain = new byte[1 << 14];
        new Random(1).nextBytes(plain);
        byte[] rec = seal(ourCipher(true), nonce, aad, plain);
        byte[] flipped = rec.clone();
        flipped[100] ^= 1;
        TlsAEADCipherImpl dec = ourCipher(false);
        dec.init(nonce, 16);
        assertThatThrownBy(() -> dec.doFinal(aad, flipped, 5, plain.length + 16, flipped, 5))
                .isInstanceOf(IllegalStateException.class);
        byte[] otherAad = aad.clone();
        otherAad[4] ^= 1;
        dec.init(nonce, 16);
        assertThatThrownBy(() -> dec.doFinal(otherAad, rec.clone(), 5, plain.length + 16, rec.clone(), 5))
                .isInstanceOf(IllegalStateException.class);
        // the cipher is usable again for the next record after a failure
        dec.init(nonce, 16);
        byte[] ok = rec.clone();
        assertThat(dec.doFinal(aad, ok, 5, plain.length + 16, ok, 5)).isEqualTo(plain.length);
    }
}
