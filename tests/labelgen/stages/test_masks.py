"""hull, residual, components and crop, each against a reference implementation."""
import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label as skimage_label
from skimage.morphology import convex_hull_image

from labelgen.stages.components import label_occlusions, min_blob_area
from labelgen.stages.crop import aligned_crop_transform, crop_image, crop_labels, labels_to_image
from labelgen.stages.hull import fill_convex_hull
from labelgen.stages.residual import MorphologyConfig, occlusion_residual, scaled_kernels
from tests.helpers import iou


def test_hull_of_a_real_projected_contour_matches_skimage(chain, astronaut):
    result = chain.label_image(astronaut)
    points = result.contour
    ours = fill_convex_hull(points, astronaut.shape)
    marks = np.zeros(astronaut.shape[:2], bool)
    marks[np.round(points[:, 1]).astype(int), np.round(points[:, 0]).astype(int)] = True
    reference = convex_hull_image(marks)
    assert iou(ours, reference) > 0.98
    assert ours.sum() > 5000


def test_hull_clips_points_outside_the_image():
    mask = fill_convex_hull(np.array([[-50.0, -50], [20, -50], [20, 20], [-50, 20]]), (10, 10))
    assert mask.all()
    assert not fill_convex_hull(np.array([[1.0, 1], [np.nan, 2]]), (5, 5)).any()


@pytest.mark.parametrize("face_height, erode, dilate", [(300, (7, 25), (45, 45)), (150, (3, 13), (23, 23)),
                                                       (600, (15, 51), (91, 91))])
def test_kernels_scale_with_face_height(face_height, erode, dilate):
    e, d = scaled_kernels(face_height)
    assert e.shape == erode and d.shape == dilate
    assert e.all() and d[0, 0] == 0 and d[dilate[0] // 2].all()  # rectangle, ellipse


def test_residual_equals_scipy_morphology_reference():
    rng = np.random.default_rng(0)
    hull = np.zeros((200, 200), bool)
    hull[20:180, 30:170] = True
    visible = hull & (ndimage.gaussian_filter(rng.random((200, 200)), 6) < 0.5)
    ours = occlusion_residual(hull, visible, face_height=300, config=MorphologyConfig())
    erode, dilate = scaled_kernels(300)
    residual = hull & ~visible
    # OpenCV treats pixels outside the image as "set" when eroding; so must the reference.
    reference = ndimage.binary_erosion(residual, erode.astype(bool), iterations=2, border_value=1)
    reference = ndimage.binary_dilation(reference, dilate.astype(bool)) & hull
    np.testing.assert_array_equal(ours, reference)


def test_residual_stays_inside_the_hull_and_drops_thin_lines():
    hull = np.zeros((300, 300), bool)
    hull[50:250, 50:250] = True
    visible = hull.copy()
    visible[100:103, 60:240] = False  # a 3 px line: too thin to survive the 25x7 erosions
    visible[150:230, 120:200] = False  # a big occluder
    residual = occlusion_residual(hull, visible, face_height=300)
    assert not residual[~hull].any()
    assert not residual[95:108].any()
    assert residual[170:210, 140:180].all()


def test_components_match_skimage_label():
    rng = np.random.default_rng(1)
    residual = ndimage.gaussian_filter(rng.random((120, 160)), 3) > 0.55
    hull = np.ones_like(residual)
    hull[:, :10] = False
    labels = label_occlusions(hull, residual)
    reference = skimage_label(residual & hull, connectivity=2)
    assert labels.max() - 1 == reference.max() > 5
    np.testing.assert_array_equal(labels >= 2, reference > 0)
    # Same partition and same order (raster order of each blob's first pixel).
    np.testing.assert_array_equal(np.where(reference > 0, reference + 1, 0), np.where(labels >= 2, labels, 0))
    assert (labels[~hull] == 0).all() and (labels[hull & ~residual] == 1).all()


def test_components_drop_small_blobs_and_renumber():
    hull = np.ones((20, 20), bool)
    residual = np.zeros_like(hull)
    residual[0, 0] = True  # 1 px: dropped
    residual[5:10, 5:10] = True  # 25 px: kept
    residual[15:17, 15:20] = True  # 10 px: kept
    labels = label_occlusions(hull, residual, min_area=min_blob_area(400, 0.02))
    assert labels[0, 0] == 1 and labels[6, 6] == 2 and labels[16, 16] == 3 and labels.max() == 3


def test_crop_uprights_a_rotated_face(chain):
    from labelgen.sample import sample_image

    upright = chain.label_image(sample_image("astronaut/original.jpg"))
    rotated = chain.label_image(sample_image("astronaut/rot20.jpg"))
    assert upright.ok and rotated.ok
    a = cv2.cvtColor(upright.image, cv2.COLOR_RGB2GRAY).astype(float)
    b = cv2.cvtColor(rotated.image, cv2.COLOR_RGB2GRAY).astype(float)
    correlation = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert correlation > 0.85
    assert iou(upright.label > 0, rotated.label > 0) > 0.85


def test_labels_map_back_onto_the_original_image():
    contour = np.stack([100 + 40 * np.sin(np.linspace(0, 2 * np.pi, 64, endpoint=False)),
                        120 - 55 * np.cos(np.linspace(0, 2 * np.pi, 64, endpoint=False))], axis=1)
    transform = aligned_crop_transform(contour, 128)
    original = fill_convex_hull(contour, (260, 220)).astype(np.uint8)
    in_crop = crop_labels(original, transform)
    back = labels_to_image(in_crop, transform, original.shape)
    assert iou(back > 0, original > 0) > 0.95
    image = np.dstack([original * 200] * 3).astype(np.uint8)
    assert crop_image(image, transform).shape == (128, 128, 3)
